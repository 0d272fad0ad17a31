"""The nginx role on one file holding three TLS server blocks, against the lab's real nginx:
disable turns stapling off in all three, absent gives the file back byte for byte and good
staples come back."""
from __future__ import annotations

from tests.integration.test_nginx_role import run_role, snapshot
from tests.lab.lab import Lab
from tests.lab.processes import wait_until

SITES = ("good", "good0", "good1")
NAMES = ("good.lab.test", "good0.lab.test", "good1.lab.test")


def verdicts(lab: Lab, name: str, handshakes: int) -> list[str]:
    return [lab.probe("nginx", name).verdict for _round in range(handshakes)]


def test_three_server_blocks_in_one_file_disable_then_absent(tmp_path):
    with Lab.start(tmp_path / "lab", servers=("nginx",), extra_sites=2) as lab:
        conf = lab.nginx.conf_dir
        # One operator file with the three blocks (as the lab writes them: ssl_stapling on,
        # ssl_stapling_verify on, ssl_trusted_certificate in each), nothing else enabled.
        three = conf / "sites-available" / "three"
        three.write_text("\n".join((conf / "sites-available" / s).read_text() for s in SITES))
        for enabled in (conf / "sites-enabled").iterdir():
            enabled.unlink()
        (conf / "sites-enabled" / "three").symlink_to(three)
        lab.nginx.reload()
        for name in NAMES:
            assert lab.wait_for_verdict("nginx", name, "good").verdict == "good"
        before = snapshot(conf)
        pid = lab.nginx.pid

        disabled = run_role(lab, tmp_path, nginx_stapling_state="disabled")
        assert disabled.returncode == 0, disabled.stdout[-4000:]
        text = three.read_text()
        assert text.count("# ocsp.stapling replaced: ssl_stapling on;") == 3
        assert "replaced: ssl_certificate_key" not in text
        assert lab.nginx.pid == pid  # reloaded, not restarted
        # With stapling on, nginx staples from the second handshake on (the responder is on
        # loopback); off, none of several handshakes per site carries a staple.
        for name in NAMES:
            assert verdicts(lab, name, 4) == ["none"] * 4, name

        restored = run_role(lab, tmp_path, nginx_stapling_state="absent")
        assert restored.returncode == 0, restored.stdout[-4000:]
        assert snapshot(conf) == before
        for name in NAMES:
            assert lab.wait_for_verdict("nginx", name, "good").verdict == "good"
        wait_until(lambda: lab.nginx.pid == pid, 5, "the same nginx master after the re-enable")
