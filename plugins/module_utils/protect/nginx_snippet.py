# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The nginx include the keeper switches: ``ssl_stapling_file`` while a valid response is
held, the fallback otherwise. Shared by the keeper and the nginx plan (which writes the
first one, the fallback, when a site enters protected mode). Standard library only."""
from __future__ import annotations

HEADER = "# Written by the ocsp.stapling keeper (protected mode); it switches this file, do not edit.\n"
SERVED = ("file", "fetch", "off")


def render(served: str, response: str | None = None, valid_until: str | None = None,
           trusted_certificate: str | None = None) -> str:
    """The snippet for ``served``: ``file`` (the held DER), ``fetch`` (nginx's own) or ``off``."""
    if served == "file":
        return (HEADER + f"# Held response valid until {valid_until}.\n"
                "ssl_stapling on;\n" f"ssl_stapling_file {response};\n")
    if served == "off":
        return HEADER + "# No valid held response: stapling off until the keeper holds one.\nssl_stapling off;\n"
    text = HEADER + "# No valid held response: nginx fetches its own until the keeper holds one.\nssl_stapling on;\n"
    if trusted_certificate:
        text += f"ssl_stapling_verify on;\nssl_trusted_certificate {trusted_certificate};\n"
    return text


def is_keeper_snippet(text: str | None) -> bool:
    return bool(text) and text.startswith(HEADER)
