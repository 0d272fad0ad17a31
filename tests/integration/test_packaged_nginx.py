"""The outage runbook on the machine's packaged /etc/nginx (Debian), in the shapes operators write.

Each shape is built by tests/lab/packaged.py on a private copy of /etc/nginx:

- ``one_file``: three TLS server blocks in one site file, each with its stapling lines;
- ``per_file``: one server block per site file;
- ``snippet``: server blocks with no ``ssl_stapling`` line, stapling from an h5bp-style
  snippet (multi-line ``resolver`` with comments) included at http level.
"""
from __future__ import annotations

import pytest

from tests.integration.packaged_runbook import play_outage_runbook
from tests.lab.packaged import NGINX_SHAPES


@pytest.mark.parametrize("packaged_nginx", sorted(NGINX_SHAPES), indirect=True)
def test_outage_runbook_on_packaged_nginx(packaged_nginx, tmp_path):
    play_outage_runbook(packaged_nginx, tmp_path, "nginx")
