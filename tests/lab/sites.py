"""What the lab's web servers serve: one TLS site per lab certificate, chosen by SNI."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.lab.pki import LEAF_HOSTS, LabPKI


@dataclass(frozen=True)
class Site:
    name: str            # the leaf's name in the PKI: good, nourl, muststaple, revoked, ...
    server_name: str     # SNI / ServerName / server_name
    cert: Path           # leaf + intermediate, as both servers take it
    key: Path
    chain: Path          # intermediate only
    leaf: Path | None = None  # the leaf alone (for SSLCertificateFile + SSLCertificateChainFile)


def lab_sites(pki: LabPKI, names: tuple[str, ...] | None = None) -> list[Site]:
    chosen = names or tuple(LEAF_HOSTS)
    return [Site(name, LEAF_HOSTS[name], pki.leaves[name].fullchain_path,
                 pki.leaves[name].key_path, pki.leaves[name].chain_path, pki.leaves[name].cert_path)
            for name in chosen]


def extra_sites(pki: LabPKI, count: int, template: str = "good") -> list[Site]:
    """``count`` more vhosts serving one certificate under other names (SNI falls back)."""
    leaf = pki.leaves[template]
    return [Site(f"{template}{i}", f"{template}{i}.lab.test", leaf.fullchain_path, leaf.key_path,
                 leaf.chain_path, leaf.cert_path) for i in range(count)]
