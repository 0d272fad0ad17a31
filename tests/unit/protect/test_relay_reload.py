"""The relay re-reads its keeper configuration when the file changes, without a restart."""
from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from ansible_collections.ocsp.stapling.plugins.module_utils.protect.keeper import keeper_from_config, load_config
from ansible_collections.ocsp.stapling.plugins.module_utils.protect.relay import RelayCore, config_stamp
from tests.unit.ocsp_helpers import make_pki, respond


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("relay-reload"))


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def spec(pki, leaf: str) -> dict:
    # The responder URL is a closed port: nothing here may depend on a fetch succeeding.
    return {"name": leaf, "cert": str(pki.leaves[leaf].cert_path), "issuer": str(pki.intermediate.cert_path),
            "ca_file": str(pki.trusted_chain), "url": "http://127.0.0.1:9/"}


def write_config(path, state_dir, certificates) -> None:
    path.write_text(json.dumps({"state_dir": str(state_dir), "timeout": 1, "certificates": certificates}))


def request_for(pki, leaf: str) -> bytes:
    return (ocsp.OCSPRequestBuilder().add_certificate(pki.leaves[leaf].cert, pki.intermediate.cert, hashes.SHA1())
            .build().public_bytes(serialization.Encoding.DER))


def relay_on(config, clock) -> RelayCore:
    return RelayCore(keeper_from_config(load_config(str(config))), refresh_in_background=False,
                     config_path=str(config), monotonic=clock)


def relay_holding_good(pki, tmp_path):
    """A relay whose configuration lists ``good``, with a held response it answers (200)."""
    state = tmp_path / "state"
    state.mkdir()
    config = tmp_path / "keeper.json"
    write_config(config, state, [spec(pki, "good")])
    (state / "good.der").write_bytes(respond(pki, "good"))
    clock = Clock()
    core = relay_on(config, clock)
    assert core.answer(request_for(pki, "good"))[0] == 200
    return core, config, state, clock


def test_a_certificate_added_to_the_configuration_is_answered_without_a_restart(pki, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    config = tmp_path / "keeper.json"
    write_config(config, state, [spec(pki, "revoked")])
    clock = Clock()
    core = relay_on(config, clock)
    held = respond(pki, "good")
    (state / "good.der").write_bytes(held)

    # Not known yet: passed on to its issuer's responder (a closed port here), never the held file.
    status, body, _type = core.answer(request_for(pki, "good"))
    assert status == 502 and b"could not be reached" in body, (status, body)   # forwarded to the issuer's responder
    assert core.counters["forwarded"] == 1

    write_config(config, state, [spec(pki, "revoked"), spec(pki, "good")])
    # Within the interval the file is not even looked at: one stat a second at most.
    clock.now += 0.5
    assert core.answer(request_for(pki, "good"))[0] == 502
    assert core.counters["config_reloads"] == 0

    clock.now += 0.6
    status, body, content_type = core.answer(request_for(pki, "good"))
    assert (status, content_type) == (200, "application/ocsp-response")
    assert body == held
    assert core.counters["config_reloads"] == 1 and core.counters["held"] == 1
    assert [entry["name"] for entry in core.state()["certificates"]] == ["revoked", "good"]
    assert core.state()["config_error"] is None


def test_a_configuration_that_no_longer_loads_keeps_the_previous_one_and_says_so(pki, tmp_path, capsys):
    core, config, state, clock = relay_holding_good(pki, tmp_path)

    config.write_text('{"certificates": [')     # half written by hand
    clock.now += 2
    assert core.answer(request_for(pki, "good"))[0] == 200
    report = core.state()
    assert str(config) in report["config_error"] and "keeps serving the 1 certificate" in report["config_error"]
    assert "could not be read" in capsys.readouterr().err
    assert core.counters["config_reloads"] == 0

    write_config(config, state, [spec(pki, "good")])
    clock.now += 2
    assert core.state()["config_error"] is None and core.counters["config_reloads"] == 1


def test_a_removed_configuration_leaves_the_relay_serving_nothing_from_the_keeper(pki, tmp_path):
    core, config, dummy, clock = relay_holding_good(pki, tmp_path)
    config.unlink()           # the last site left protected mode: prune removed the file
    clock.now += 2
    assert core.state()["certificates"] == []
    status, body, _type = core.answer(request_for(pki, "good"))
    assert status == 503 and b"no upstream" in body, (status, body)


def test_the_stamp_sees_a_rewrite_of_the_same_size(tmp_path):
    path = tmp_path / "keeper.json"
    path.write_text('{"certificates": []}')
    before = config_stamp(str(path))
    replacement = tmp_path / "new.json"
    replacement.write_text('{"certificates": []}')
    replacement.replace(path)          # an atomic write: same bytes, new inode
    assert config_stamp(str(path)) != before
    assert config_stamp(str(tmp_path / "missing.json")) is None
