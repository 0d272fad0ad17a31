"""Lab fixtures for integration tests: every test that changes the responder gets its own lab;
tests that only read share one (``shared_lab``)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.lab.lab import Lab
from tests.lab.packaged import start_packaged


#: A busy loop that outlives a crashed test stops by itself after this long.
BUSY_SECONDS = 600


@pytest.fixture
def cpu_load():
    """One bounded busy loop per core, for the length of the test; stopped by PID."""
    code = f"import time\nend = time.monotonic() + {BUSY_SECONDS}\nwhile time.monotonic() < end:\n    pass\n"
    loops = []
    try:
        for dummy in range(os.cpu_count() or 2):
            loops.append(subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL))
        yield loops
    finally:
        for loop in loops:
            loop.kill()
        for loop in loops:
            loop.wait(timeout=10)


@pytest.fixture
def lab(tmp_path):
    """PKI, responder, nginx and apache2 on 127.0.0.1; Apache forgets staples after 2 s."""
    with Lab.start(tmp_path / "lab", apache_options={"standard_cache_timeout": 2,
                                                     "error_cache_timeout": 2}) as running:
        yield running


@pytest.fixture(scope="session")
def shared_lab(tmp_path_factory):
    """The ``lab`` fixture's lab, started once per test process for the tests that only read
    it: they probe, read logs and run read-only modules, and never change the responder's
    mode, a server's configuration or a server's process."""
    with Lab.start(tmp_path_factory.mktemp("shared") / "lab",
                   apache_options={"standard_cache_timeout": 2, "error_cache_timeout": 2}) as running:
        yield running


@pytest.fixture
def responder_lab(tmp_path):
    """Only the PKI and the OCSP responder."""
    with Lab.start(tmp_path / "lab", servers=()) as running:
        yield running


@pytest.fixture
def packaged_apache(request, tmp_path):
    """The machine's packaged /etc/apache2 copied to a private prefix, built in the shape
    ``request.param`` (tests.lab.packaged.APACHE_SHAPES); Apache forgets staples after 2 s."""
    with start_packaged(tmp_path / "lab", "apache", request.param, standard_cache_timeout=2,
                        error_cache_timeout=2) as running:
        yield running


@pytest.fixture
def packaged_nginx(request, tmp_path):
    """The machine's packaged /etc/nginx copied to a private prefix, built in the shape
    ``request.param`` (tests.lab.packaged.NGINX_SHAPES)."""
    with start_packaged(tmp_path / "lab", "nginx", request.param) as running:
        yield running


#: The modules whose tests take longest (a minute or more each under ``make test``'s load,
#: see its ``--durations`` table), started first: the short tests then fill the workers'
#: last minutes instead of one long test running alone on one worker while the other idles.
LONG_FIRST = (
    "test_protect_side_by_side.py",
    "test_runbook_protected.py",
    "test_packaged_apache.py",
    "test_apache_protected.py",
    "test_apache_relay_role.py",
    "test_packaged_nginx.py",
    "test_apache_rhel.py",
    "test_runbook_enable_tune.py",
    "test_bench_smoke.py",
    "test_fleet.py",
    "test_cpanel_include_flow.py",
    "test_apache_modmd_expiry.py",
)


def pytest_collection_modifyitems(config, items):  # pylint: disable=unused-argument
    rank = {name: index for index, name in enumerate(LONG_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: file order kept otherwise
