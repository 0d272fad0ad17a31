"""What does a lab site staple? ``openssl s_client -status``, parsed.

The collection's own probe is the ``stapling_status`` module; this one is the lab's
independent witness, used by the lab's tests and the demo.
"""
from __future__ import annotations

import re
import subprocess
from dataclasses import asdict, dataclass


@dataclass
class Staple:
    server_name: str
    port: int
    handshake_ok: bool
    stapled: bool
    response_status: str | None = None   # successful, tryLater, ...
    cert_status: str | None = None       # good, revoked, unknown
    next_update: str | None = None
    error: str | None = None
    this_update: str | None = None       # as openssl prints them: "Dec  2 16:30:26 2026 GMT"
    produced_at: str | None = None

    @property
    def verdict(self) -> str:
        """One word: good, revoked, unknown, error_stapled, none, handshake_failed."""
        if not self.handshake_ok:
            return "handshake_failed"
        if not self.stapled:
            return "none"
        if self.response_status != "successful":
            return "error_stapled"
        return self.cert_status or "unknown"

    def as_dict(self) -> dict:
        return dict(asdict(self), verdict=self.verdict)


_STATUS = re.compile(r"OCSP Response Status: (\w+)")
_CERT_STATUS = re.compile(r"Cert Status: (\w+)")
_NEXT = re.compile(r"Next Update: (.+)")
_THIS = re.compile(r"This Update: (.+)")
_PRODUCED = re.compile(r"Produced At: (.+)")


def probe(port: int, server_name: str, host: str = "127.0.0.1", timeout: float = 15.0,
          tls: str | None = None) -> Staple:
    """One TLS handshake sending status_request; bounded by ``timeout`` seconds."""
    command = ["openssl", "s_client", "-connect", f"{host}:{port}", "-servername", server_name,
               "-status"]
    if tls:
        command.append(f"-{tls}")
    try:
        result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return Staple(server_name, port, False, False, error=f"no answer within {timeout}s")
    out = result.stdout
    handshake_ok = "-----BEGIN CERTIFICATE-----" in out or "Server certificate" in out
    if not handshake_ok:
        return Staple(server_name, port, False, False,
                      error=(result.stderr.strip().splitlines() or ["handshake failed"])[-1])
    if "OCSP response: no response sent" in out or "OCSP response:" not in out:
        return Staple(server_name, port, True, False)
    status = _STATUS.search(out)
    cert_status = _CERT_STATUS.search(out)
    next_update = _NEXT.search(out)
    this_update = _THIS.search(out)
    produced_at = _PRODUCED.search(out)
    return Staple(server_name, port, True, True,
                  response_status=status.group(1) if status else None,
                  cert_status=cert_status.group(1).lower() if cert_status else None,
                  next_update=next_update.group(1).strip() if next_update else None,
                  this_update=this_update.group(1).strip() if this_update else None,
                  produced_at=produced_at.group(1).strip() if produced_at else None)
