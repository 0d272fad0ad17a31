"""Make the checkout importable as ``ansible_collections.ocsp.stapling``.

The repository root is the collection root; Python (and Ansible) find it under
``.cache/collections/ansible_collections/ocsp/stapling``, a link that ``make`` creates
and that this file creates too, so ``pytest`` works straight from a checkout.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COLLECTIONS = REPO / ".cache" / "collections"
_link = COLLECTIONS / "ansible_collections" / "ocsp" / "stapling"
if not _link.exists():
    _link.parent.mkdir(parents=True, exist_ok=True)
    try:
        _link.symlink_to(REPO)
    except FileExistsError:
        pass
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("ANSIBLE_COLLECTIONS_PATH", str(COLLECTIONS))
os.environ.setdefault("ANSIBLE_HOST_KEY_CHECKING", "False")
