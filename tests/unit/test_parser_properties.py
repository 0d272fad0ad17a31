"""Property tests on the parsers that read what the outside world hands us: OCSP responses
from responders and staples from servers, ``openssl s_client`` transcripts, and Apache
configuration text. Arbitrary input never crashes them, and never turns into a verdict
of "good"."""
from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp.verify import verify_response
from ansible_collections.ocsp.stapling.plugins.module_utils.probe import tls as tls_probe
from ansible_collections.ocsp.stapling.plugins.module_utils.servers.apache import config as dialect_apache
from tests.unit.ocsp_helpers import NOW, make_pki, respond

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("properties"))


@pytest.fixture(scope="module")
def good_der(pki):
    der = respond(pki)
    result = verify_response(der, pki.leaves["good"].cert, pki.intermediate.cert, now=NOW)
    assert result.ok and result.cert_status == "good", result.detail
    return der


# -- OCSP responses ----------------------------------------------------------------------

@PROPERTY
@given(st.binary(max_size=2048))
@example(b"")
@example(b"\x30\x03\x0a\x01\x00")            # SEQUENCE { ENUMERATED successful } without a body
@example(b"\x30\x80" + b"\x00" * 8)          # indefinite length
def test_arbitrary_bytes_never_crash_the_response_parser_and_never_verify(pki, data):
    result = verify_response(data, pki.leaves["good"].cert, pki.intermediate.cert, now=NOW)
    assert not result.ok
    assert result.failure and result.detail


@PROPERTY
@given(st.data())
def test_a_corrupted_good_response_never_verifies(pki, good_der, data):
    """Flip, drop or insert bytes anywhere in a valid response: it must never verify."""
    position = data.draw(st.integers(0, len(good_der) - 1), label="position")
    how = data.draw(st.sampled_from(["flip", "drop", "insert", "truncate"]), label="how")
    if how == "flip":
        mask = data.draw(st.integers(1, 255), label="mask")
        mutated = good_der[:position] + bytes([good_der[position] ^ mask]) + good_der[position + 1:]
    elif how == "drop":
        mutated = good_der[:position] + good_der[position + 1:]
    elif how == "insert":
        mutated = good_der[:position] + data.draw(st.binary(min_size=1, max_size=4)) + good_der[position:]
    else:
        mutated = good_der[:position]
    assume(mutated != good_der)
    result = verify_response(mutated, pki.leaves["good"].cert, pki.intermediate.cert, now=NOW)
    # A change in an unsigned part the parser tolerates (the certs field or DER padding the
    # parser re-encodes) may still verify only if the signed data is untouched; what may
    # never happen is a "good" verdict with a bad signature or for another certificate.
    if result.ok:
        assert result.signature_valid is True and result.certid_match is True
        assert result.cert_status == "good"
    else:
        assert result.failure and result.detail


def test_a_good_response_for_another_certificate_never_verifies(pki, good_der):
    result = verify_response(good_der, pki.leaves["revoked"].cert, pki.intermediate.cert, now=NOW)
    assert not result.ok and result.failure == "certid_mismatch", result.as_dict()


# -- s_client transcripts ----------------------------------------------------------------

transcript_lines = st.one_of(
    st.text(alphabet=string.printable, max_size=60),
    st.builds(lambda d, n, name: f"<<< TLS 1.2, Handshake [length {n:04x}], {name}",
              st.just(None), st.integers(0, 70000), st.sampled_from(["Certificate", "ServerHello", "CertificateStatus", ""])),
    st.builds(lambda data: "    " + " ".join(f"{b:02x}" for b in data), st.binary(max_size=16)),
    st.just("-----BEGIN CERTIFICATE-----"),
    st.just("-----END CERTIFICATE-----"),
    st.just("New, TLSv1.3, Cipher is TLS_AES_256_GCM_SHA384"),
    st.just("New, (NONE), Cipher is (NONE)"),
)


@PROPERTY
@given(st.lists(transcript_lines, max_size=40))
@example(["<<< TLS 1.2, Handshake [length 0000], Certificate"])
@example(["-----BEGIN CERTIFICATE-----", "not base64 at all!", "-----END CERTIFICATE-----",
          "New, TLSv1.3, Cipher is TLS_AES_256_GCM_SHA384"])
@example(["<<< TLS 1.2, Handshake [length 0001], Certificate", "    0"])
def test_any_transcript_is_read_or_rejected_with_a_parse_error(lines):
    stdout = "\n".join(lines)
    try:
        seen = tls_probe.parse_transcript(stdout)
    except tls_probe.ParseError as exc:
        assert str(exc)
        return
    assert isinstance(seen.chain, list)
    assert seen.staple is None or isinstance(seen.staple, bytes)


@PROPERTY
@given(st.lists(transcript_lines, max_size=40))
def test_the_probe_result_for_any_transcript_is_a_result_not_a_crash(lines):
    endpoint = tls_probe.Endpoint(host="127.0.0.1", port=443, server_name="site.test")
    blank = tls_probe.ProbeResult(host=endpoint.host, port=endpoint.port, server_name=endpoint.server_name)
    result = tls_probe.fill_result(blank, endpoint, "\n".join(lines), "")
    assert result.handshake_ok or result.error in tls_probe.ERROR_CLASSES


@PROPERTY
@given(st.binary(max_size=300), st.booleans())
def test_any_certificate_message_is_read_or_rejected(blob, tls13):
    message = bytes([tls_probe.HANDSHAKE_CERTIFICATE]) + len(blob).to_bytes(3, "big") + blob
    try:
        chain, staple = tls_probe.parse_certificate(message, tls13)
    except tls_probe.ParseError:
        return
    assert all(isinstance(der, bytes) for der in chain)
    assert staple is None or staple


# -- Apache configuration text -----------------------------------------------------------

words = st.text(alphabet=string.ascii_letters + string.digits + "/._-:*$", min_size=1, max_size=12)
spaced = st.text(alphabet=string.ascii_letters + " ${}/", min_size=1, max_size=12)


def quote(word: str) -> str:
    if not word or any(c.isspace() for c in word) or word[0] in "\"'":
        return '"' + word.replace('"', '\\"') + '"'
    return word


@PROPERTY
@given(st.lists(st.one_of(words, spaced), min_size=1, max_size=6))
def test_quoted_arguments_split_back_into_the_same_words(args):
    assume(all(not a.endswith("\\") for a in args))
    assert dialect_apache.split_arguments(" ".join(quote(a) for a in args)) == args


apache_lines = st.one_of(
    st.builds(lambda n, a: f"{n} {a}", st.sampled_from(["SSLUseStapling", "SSLStaplingCache", "ServerName", "Include"]), words),
    st.builds(lambda s, a: f"<{s} {a}>", st.sampled_from(["VirtualHost", "IfModule", "Directory"]), words),
    st.sampled_from(["</VirtualHost>", "</IfModule>", "</Directory>", "# comment", "", "  \\", "<>", "<VirtualHost *:443"]),
    st.text(alphabet=string.printable, max_size=40),
)


@PROPERTY
@given(st.lists(apache_lines, max_size=30))
def test_any_apache_text_parses_or_fails_with_a_sentence_naming_the_line(lines):
    text = "\n".join(lines)
    try:
        tree = dialect_apache.parse_text(text, "site.conf")
    except dialect_apache.ApacheConfigError as exc:
        assert "site.conf:" in str(exc)
        return
    physical = text.count("\n") + 1

    def check(nodes):
        for node in nodes:
            assert 1 <= node.line <= physical and node.file == "site.conf"
            check(node.children or [])
    check(tree)


@PROPERTY
@given(st.lists(st.tuples(st.sampled_from(["SSLUseStapling", "ServerName", "SSLStaplingCache"]), words), min_size=1, max_size=12),
       st.sampled_from(["\n", "\r\n"]))
def test_directives_written_any_way_are_read_back_with_their_line_numbers(pairs, newline):
    text = newline.join(f"  {name} {value}" for name, value in pairs) + newline
    tree = dialect_apache.parse_text(text, "f.conf")
    assert [(d.name, d.args, d.line) for d in tree] == [(n, [v], i) for i, (n, v) in enumerate(pairs, 1)]
