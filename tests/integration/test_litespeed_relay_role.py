"""The litespeed role in protected mode: ocspResponder pointed at the loopback relay.

LiteSpeed itself cannot run here, so the server is the real-format OpenLiteSpeed tree with
the stand-in ``lswsctrl`` / ``openlitespeed`` (``make_tree``), whose listener and virtual
host serve the lab's real ``good`` certificate (leaf + intermediate in ``certFile``). The
lab's responder and the collection's relay (its own command line, started and stopped by
PID) are real: the role must refuse while no relay answers (nothing changed, no restart),
then, with the relay running on a configuration listing nothing, list the certificate in
the keeper configuration, wait until the relay serves it, and write ``ocspResponder <relay>``
on both blocks; the relay then answers an OCSP request for that certificate with the
keeper's ``good`` response, also with the responder down. A second run changes nothing, and
``state: absent`` gives every file back byte for byte and prunes the keeper.
"""
from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import urllib.parse
import urllib.request

from tests.integration.ansible_run import play_role
from tests.integration.test_apache_relay_role import Relay
from tests.lab.lab import Lab
from tests.lab.responder import free_port
from tests.unit.servers.litespeed.test_stapling_module import calls, make_tree, snapshot
from tests.unit.servers.litespeed.test_stapling_module import role_vars as litespeed_role_vars


def ask(relay_port: int, lab: Lab, tmp_path) -> str:
    """An OCSP request for the good certificate, sent as LiteSpeed sends it (GET, base64 in the
    path) to the relay; the answer judged by ``openssl ocsp``: the certificate's status."""
    leaf = lab.pki.leaves["good"]
    request = tmp_path / "request.der"
    subprocess.run(["openssl", "ocsp", "-issuer", str(leaf.chain_path), "-cert", str(leaf.cert_path), "-no_nonce",
                    "-reqout", str(request)], check=True, capture_output=True, timeout=30)
    path = urllib.parse.quote(base64.b64encode(request.read_bytes()).decode(), safe="")   # URL-encoded (RFC 6960 A.1)
    with urllib.request.urlopen(f"http://127.0.0.1:{relay_port}/{path}", timeout=10) as answer:
        assert answer.status == 200, answer.status
        (tmp_path / "response.der").write_bytes(answer.read())
    judged = subprocess.run(["openssl", "ocsp", "-respin", str(tmp_path / "response.der"), "-issuer",
                             str(leaf.chain_path), "-cert", str(leaf.cert_path), "-CAfile",
                             str(lab.pki.directory / "ca-bundle.pem")], capture_output=True, text=True, timeout=30,
                            check=False)
    assert "Response verify OK" in judged.stdout + judged.stderr, judged.stdout + judged.stderr
    match = re.search(r": (good|revoked|unknown)", judged.stdout)
    return match.group(1) if match else judged.stdout


def test_litespeed_protected_mode_points_the_blocks_at_the_relay(tmp_path):
    with Lab.start(tmp_path / "lab", servers=()) as lab:
        root = make_tree(tmp_path, "ols")
        shutil.copyfile(lab.pki.leaves["good"].fullchain_path, root / "conf" / "cert" / "example.crt")
        relay_port = free_port()
        config = tmp_path / "etc" / "keeper-litespeed.json"
        state_dir = tmp_path / "keeper-state"
        issuers = tmp_path / "keeper-issuers"
        variables = litespeed_role_vars(
            root, tmp_path, litespeed_stapling_state="enabled", litespeed_stapling_mode="protected",
            litespeed_verify=False, litespeed_backup=False, litespeed_stapling_relay_url=f"http://127.0.0.1:{relay_port}/",
            litespeed_stapling_relay_keeper_dir=str(issuers), litespeed_stapling_relay_keeper_config=str(config),
            litespeed_stapling_relay_keeper_state_dir=str(state_dir),
            litespeed_stapling_relay_ca_bundle=str(lab.pki.directory / "ca-bundle.pem"),
            litespeed_stapling_relay_list_retries=3)
        before = snapshot(root)

        refused = play_role("ocsp.stapling.litespeed", variables, "stapling_server_result")
        assert refused["failed"] and "did not answer" in refused["msg"] and "nothing in LiteSpeed was changed" in refused["msg"], refused
        assert snapshot(root) == before and calls(root) == []

        config.write_text(json.dumps({"state_dir": str(state_dir), "certificates": []}))
        relay = Relay(config, relay_port, tmp_path / "relay.log")
        try:
            done = play_role("ocsp.stapling.litespeed", variables, "stapling_server_result")
            assert not done["failed"], done
            assert done["result"]["changed"], done["result"]
            listed = [entry["name"] for entry in relay.state()["certificates"]]
            assert listed and relay.process.poll() is None, relay.state()   # the same relay, no restart
            after = snapshot(root)
            changed = {path: content.decode() for path, content in after.items() if before.get(path) != content}
            assert set(changed) == {"conf/httpd_config.conf", "conf/vhosts/Example/vhconf.conf"}, sorted(changed)
            for path, text in changed.items():
                assert re.search(rf"^\s*ocspResponder\s+http://127\.0\.0\.1:{relay_port}/\s*$", text, re.M), (path, text)
            assert calls(root) == ["restart"], calls(root)
            assert ask(relay_port, lab, tmp_path) == "good"

            lab.responder.set_mode("down")
            assert ask(relay_port, lab, tmp_path) == "good"     # the keeper's held response, responder down
            lab.responder.set_mode("good")

            again = play_role("ocsp.stapling.litespeed", variables, "stapling_server_result")
            assert not again["failed"] and not again["result"]["changed"], again
            assert snapshot(root) == after

            gone = play_role("ocsp.stapling.litespeed", dict(variables, litespeed_stapling_state="absent"),
                             "stapling_server_result")
            assert not gone["failed"], gone
            assert snapshot(root) == before, "state absent did not give the files back byte for byte"
            assert not config.exists(), "the keeper configuration was not pruned"
            assert list(issuers.glob("*.issuer.pem")) == []
        finally:
            relay.stop()
