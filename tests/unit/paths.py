"""Where the unit tests find the repository and their fixtures, from any folder below tests/unit."""
from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
