"""The outage runbook on the machine's packaged /etc/apache2 (Debian), in the shapes operators write.

Each shape is built by tests/lab/packaged.py on a private copy of /etc/apache2:

- ``chainfile``: Debian's default-ssl.conf with a leaf-only ``SSLCertificateFile`` and the
  intermediate in ``SSLCertificateChainFile``; stapling at server scope in ssl.conf;
- ``per_vhost``: ``SSLUseStapling on`` inside each ``<VirtualHost>``, the operator's
  ``SSLStaplingCache`` in a conf-available file enabled by an a2enconf symlink;
- ``server_scope``: stapling only at server scope, several vhosts in one site file.

After the outage runbook each shape is also tuned (tune_stapling), which must reuse the
operator's ``SSLStaplingCache`` rather than write a second one.
"""
from __future__ import annotations

import pytest

from tests.integration.packaged_runbook import play_outage_runbook
from tests.lab.packaged import APACHE_SHAPES


@pytest.mark.parametrize("packaged_apache", sorted(APACHE_SHAPES), indirect=True)
def test_outage_runbook_on_packaged_apache(packaged_apache, tmp_path):
    play_outage_runbook(packaged_apache, tmp_path, "apache", tune=True)
