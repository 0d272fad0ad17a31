"""check_stapling on Debian's default-ssl.conf shape: the leaf alone in SSLCertificateFile,
the intermediate in SSLCertificateChainFile (or SSLCACertificateFile).

apache2 finds the issuer there and staples; the diagnosis must find it there too, ask the
responder, and say it is unreachable when it is, even while Apache still staples the good
response it cached before the outage. A Must-Staple site without a good staple is never
``healthy``. Judged by real handshakes and by the playbook's JSON report.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from tests.integration.ansible_run import run_playbook
from tests.lab import inventory as lab_inventory
from tests.lab.apache import ApacheInstance
from tests.lab.lab import Lab
from tests.lab.responder import free_port
from tests.lab.sites import Site

HOST = "lab"

# Debian's default-ssl.conf, trimmed: comments between the directives, the chain apart.
GOOD_SITE = """\
<VirtualHost 127.0.0.1:{port}>
\tServerName {name}
\tSSLEngine on

\t#   A self-signed (snakeoil) certificate can be created by installing
\t#   the ssl-cert package.
\tSSLCertificateFile\t{cert}
\tSSLCertificateKeyFile {key}

\t#   Server Certificate Chain:
\t#   Point SSLCertificateChainFile at a file containing the
\t#   concatenation of PEM encoded CA certificates which form the
\t#   certificate chain for the server certificate.
\tSSLCertificateChainFile {chain}
</VirtualHost>
"""

# The intermediate only in the verify store; stapling turned off for this vhost alone.
MUST_STAPLE_SITE = """\
<VirtualHost 127.0.0.1:{port}>
\tServerName {name}
\tSSLEngine on
\tSSLCertificateFile {cert}
\tSSLCertificateKeyFile {key}
\t#   Certificate Authority (CA):
\tSSLCACertificateFile {chain}
\tSSLUseStapling off
</VirtualHost>
"""


TEMPLATES = {"good": GOOD_SITE, "muststaple": MUST_STAPLE_SITE}


class DefaultSslApache(ApacheInstance):
    """The lab's apache2 with the vhosts above instead of the lab's fullchain vhosts."""

    def write_config(self) -> None:
        super().write_config()
        for site in self.sites:
            conf = self.conf_dir / "sites-available" / f"{site.name}.conf"
            conf.write_text(TEMPLATES[site.name].format(port=self.port, name=site.server_name, cert=site.cert,
                                                        key=site.key, chain=site.chain))


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    directory = tmp_path_factory.mktemp("issuer-sources") / "lab"
    lab = Lab.start(directory, servers=())
    try:
        sites = [Site(name, f"{name}.lab.test", lab.pki.leaves[name].cert_path, lab.pki.leaves[name].key_path,
                      lab.pki.leaves[name].chain_path) for name in ("good", "muststaple")]
        # Apache's default cache timeout (an hour): the good response cached before the
        # outage is still stapled during it.
        lab.apache = DefaultSslApache(directory / "apache", free_port(), sites)
        lab.apache.start()
        lab.write_record()
    except BaseException:
        lab.stop()
        raise
    with lab:
        yield lab


def check_stapling(lab: Lab, tmp_path: Path, tag: str) -> dict:
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps(lab_inventory.inventory(lab.record(), host=HOST, python=sys.executable)))
    report = tmp_path / f"{tag}.json"
    completed = run_playbook("ocsp.stapling.check_stapling", inventory=str(inventory), timeout=300,
                             extra_vars={"target": HOST, "report_json": str(report)},
                             env={"ANSIBLE_PIPELINING": "1"})
    (tmp_path / f"{tag}.log").write_text(completed.stdout + completed.stderr)
    assert report.exists(), f"no report (exit {completed.returncode}):\n{completed.stdout[-6000:]}\n{completed.stderr[-2000:]}"
    recap = re.search(rf"^{HOST}\s*:.*failed=(\d+)", completed.stdout.split("PLAY RECAP", 1)[-1], re.M)
    assert recap and recap.group(1) == "0", completed.stdout[-6000:]
    return json.loads(report.read_text())["hosts"][HOST]


def rows(outcome: dict) -> dict[str, dict]:
    return {row["site"]: row for row in outcome["sites"]}


def test_the_leaf_only_file_is_served_and_apache_staples_from_the_chain_file(lab):
    # The served file holds the leaf alone: the issuer is only in the chain / CA file.
    assert lab.pki.leaves["good"].cert_path.read_bytes().count(b"BEGIN CERTIFICATE") == 1
    assert lab.wait_for_verdict("apache", "good", "good").cert_status == "good"
    assert lab.probe("apache", "muststaple").verdict == "none"


def test_must_staple_site_without_a_staple_is_broken_not_healthy(lab, tmp_path):
    lab.responder.set_mode("good")
    assert lab.probe("apache", "muststaple").verdict == "none"  # what a browser gets: refused
    outcome = check_stapling(lab, tmp_path, "must-staple")
    assert outcome["verdict"] == "must_staple_broken", outcome["reasons"]
    sites = rows(outcome)
    # The responder was asked for both sites, with the issuer from where Apache reads it.
    assert sites["good.lab.test"]["responder_reachable"] is True
    assert sites["good.lab.test"]["issuer_source"] == "issuer_files"
    assert sites["muststaple.lab.test"]["issuer_source"] == "issuer_files"
    assert sites["muststaple.lab.test"]["verdict"] == "must_staple_missing"
    assert "muststaple.lab.test: stapling is off for it" in " ".join(outcome["reasons"])


def test_responder_down_is_reported_unreachable_while_apache_still_staples_its_cache(lab, tmp_path):
    lab.responder.set_mode("good")
    lab.wait_for_verdict("apache", "good", "good")
    lab.responder.set_mode("down")
    try:
        # The outage is invisible in the staple: Apache serves the good response it cached.
        assert lab.probe("apache", "good").verdict == "good"
        outcome = check_stapling(lab, tmp_path, "outage")
        assert lab.probe("apache", "good").verdict == "good"
    finally:
        lab.responder.set_mode("good")
    assert outcome["verdict"] == "disable_recommended", outcome["reasons"]
    good = rows(outcome)["good.lab.test"]
    assert good["responder_reachable"] is False
    assert good["responder_failure"] == "connection_refused", good
    assert good["issuer_source"] == "issuer_files"
    assert lab.responder.url in outcome["reasons"][0] and "cannot get a correct answer" in outcome["reasons"][0]
    # The Must-Staple site is still named as broken.
    assert "muststaple.lab.test" in " ".join(outcome["reasons"])
