# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Protected mode for LiteSpeed through the relay: the keeper's list of certificates.

LiteSpeed only fetches OCSP itself, from ``ocspResponder`` when it is set; the role points
the blocks being enabled at the loopback relay (``protect/relay.py``), which answers from
the keeper's held responses. This lists one keeper entry per certificate file those blocks
serve (``certFile``), named after the first block serving it, with its issuer (the
certificate after the leaf in that file: OpenLiteSpeed serves ``certFile`` as the chain
with ``certChain 1``) for the role to write, because ``openssl ocsp -issuer`` takes one
certificate. Standard library only.
"""
from __future__ import annotations

import os
import re

from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp import der
from ansible_collections.ocsp.stapling.plugins.module_utils.protect.issuer import issuer_after_leaf

_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def keeper_entries(targets: list[dict], keeper_dir: str, ca_bundle: str) -> tuple[list[dict], list[dict], list[str]]:
    """(keeper certificates, issuer files to write, problems) for the plan's ``targets``."""
    certificates: list[dict] = []
    files: list[dict] = []
    problems: list[str] = []
    seen: set[str] = set()
    names: set[str] = set()
    for target in targets:
        for cert in target.get("certificates") or []:
            if os.path.realpath(cert) in seen:
                continue
            seen.add(os.path.realpath(cert))
            where = "%s %s (%s)" % (target.get("kind"), target.get("name"), target.get("file"))
            issuer = _issuer_pem(cert, where, problems)
            if issuer is None:
                continue
            base = _NAME.sub("_", ((target.get("names") or [None])[0] or target.get("name") or "block")).strip("._-")[:96]
            name, number = base or "block", 1
            while name in names:
                number += 1
                name = "%s-%d" % (base or "block", number)
            names.add(name)
            issuer_path = os.path.join(keeper_dir, name + ".issuer.pem")
            files.append({"path": issuer_path, "content": issuer, "mode": "0644"})
            certificates.append({"name": name, "cert": cert, "issuer": issuer_path, "ca_file": ca_bundle})
    return certificates, files, problems


def _issuer_pem(cert: str, where: str, problems: list[str]) -> str | None:
    try:
        blocks = der.read_chain(cert)
    except OSError as exc:
        problems.append("%s: the keeper needs the certificate and its issuer, and %s could not be read (%s). Check "
                        "certFile, then run again. Nothing was changed." % (where, exc.filename or cert, exc.strerror))
        return None
    issuer, problem = issuer_after_leaf(
        blocks, cert, where, "that file holds no certificate after the leaf. Serve the chain in certFile "
        "(certificate then intermediate, certChain 1), then run again.")
    if problem:
        problems.append(problem)
    return issuer
