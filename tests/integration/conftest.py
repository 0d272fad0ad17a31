"""Lab fixtures for integration tests: every test that changes the responder gets its own lab."""
from __future__ import annotations

import pytest

from tests.lab.lab import Lab


@pytest.fixture
def lab(tmp_path):
    """PKI, responder, nginx and apache2 on 127.0.0.1; Apache forgets staples after 2 s."""
    with Lab.start(tmp_path / "lab", apache_options={"standard_cache_timeout": 2,
                                                     "error_cache_timeout": 2}) as running:
        yield running


@pytest.fixture
def responder_lab(tmp_path):
    """Only the PKI and the OCSP responder."""
    with Lab.start(tmp_path / "lab", servers=()) as running:
        yield running
