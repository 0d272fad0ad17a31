# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The issuer the keeper needs for a certificate, from the chain a server serves (host side,
standard library only): the certificate right after the leaf, checked to be its issuer.
Shared by the relay modes of the Apache plan and of the LiteSpeed role."""
from __future__ import annotations

from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp import der


def issuer_after_leaf(blocks: list[bytes], cert: str, where: str, missing: str) -> tuple[str | None, str | None]:
    """``(issuer PEM, None)``, or ``(None, problem)`` naming ``where`` and what to do.

    ``blocks``: the PEM certificates served for ``cert``, leaf first; ``missing``: what the
    server's own configuration offers when no issuer follows the leaf (a sentence ending in
    the step to take).
    """
    if len(blocks) < 2:
        return None, f"{where}: the keeper needs the issuer of {cert}, and {missing} Nothing was changed."
    try:
        matches = der.certificate_info(blocks[0])["issuer"] == der.certificate_info(blocks[1])["subject"]
    except der.DERError as exc:
        return None, f"{where}: {cert} does not hold a readable certificate ({exc}). Nothing was changed."
    if not matches:
        return None, (f"{where}: the certificate after the leaf of {cert} is not its issuer (the chain is out of "
                      f"order or belongs to another certificate), so the keeper could not ask for its response. "
                      f"Fix the chain order, then run again. Nothing was changed.")
    return blocks[1].decode("ascii"), None
