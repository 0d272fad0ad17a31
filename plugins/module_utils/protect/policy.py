# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""When the keeper refreshes a held OCSP response, and whether a new one may replace it.

Pure functions over plain numbers (POSIX seconds), standard library only. The policy is
the one the servers that already survive responder outages use:

- refresh once half the validity has passed (certmagic, Caddy) or a third of it is left
  (mod_md's default ``MDStaplingRenewWindow 33%``), whichever comes first;
- after a failure retry after 30 s, doubling to a cap (mod_md), with jitter so a fleet
  that lost the same responder does not come back in lockstep;
- never replace a valid held response with an error, an older response or one that
  failed verification: the held one is what keeps the sites stapling during an outage.
"""
from __future__ import annotations

import random

BACKOFF_START = 30.0
BACKOFF_CAP = 3600.0
JITTER = 0.2            # a retry lands in [delay * (1 - JITTER), delay]
EXPIRY_MARGIN_MIN = 60.0
EXPIRY_MARGIN_SHARE = 0.05


def refresh_due(this_update: float, next_update: float) -> float:
    """The moment a response with this validity should be refreshed."""
    validity = max(0.0, next_update - this_update)
    half_passed = this_update + validity / 2
    third_left = next_update - validity / 3
    return min(half_passed, third_left)


def backoff_delay(consecutive_failures: int, start: float = BACKOFF_START, cap: float = BACKOFF_CAP,
                  jitter: float = JITTER, rand: float | None = None) -> float:
    """Seconds to wait after ``consecutive_failures`` (>= 1) failed refreshes in a row."""
    if consecutive_failures < 1:
        return 0.0
    exponent = min(consecutive_failures - 1, 62)
    delay = min(cap, start * (2.0 ** exponent))
    if rand is None:
        rand = random.random()
    return delay * (1.0 - jitter * min(max(rand, 0.0), 1.0))


def next_refresh(now: float, held: dict | None, consecutive_failures: int,
                 rand: float | None = None, start: float = BACKOFF_START,
                 cap: float = BACKOFF_CAP) -> float:
    """When to try next: the refresh point of the held response, or a back-off retry.

    ``held`` carries ``this_update`` and ``next_update`` (seconds). With nothing valid held
    a refresh is due now (or after the back-off when the last attempts failed).
    """
    if consecutive_failures > 0:
        return now + backoff_delay(consecutive_failures, start, cap, rand=rand)
    if not held or not is_valid(held, now):
        return now
    return max(now, refresh_due(held["this_update"], held["next_update"]))


def is_valid(response: dict | None, now: float) -> bool:
    """A verified response inside its validity window (thisUpdate <= now < nextUpdate)."""
    if not response or not response.get("verified"):
        return False
    this_update, next_update = response.get("this_update"), response.get("next_update")
    if this_update is None or next_update is None:
        return False
    return this_update <= now < next_update


def should_replace(held: dict | None, candidate: dict, now: float) -> tuple[bool, str]:
    """Whether ``candidate`` may replace ``held``, and why (a sentence for the state file).

    Both are dicts with ``verified`` (bool), ``this_update`` and ``next_update``
    (seconds or None). A candidate that failed verification, is outside its validity or is
    not newer than a held valid response never replaces it.
    """
    if not candidate.get("verified"):
        return False, "the new response failed verification; the held one is kept"
    if not is_valid(candidate, now):
        return False, "the new response is not inside its validity window (thisUpdate..nextUpdate); the held one is kept"
    if not is_valid(held, now):
        return True, "nothing valid was held"
    if candidate["this_update"] <= held["this_update"]:
        return False, "the new response is not newer than the held one (thisUpdate not later)"
    if candidate["next_update"] < held["next_update"]:
        return False, "the new response expires before the held one"
    return True, "the new response is newer"


def expiry_margin(this_update: float, next_update: float) -> float:
    """How long before nextUpdate a held response is taken off a server that cannot check expiry.

    nginx's ``ssl_stapling_file`` is served with no expiry check, so the site must leave the
    file before nextUpdate: 5 % of the validity, at least a minute, never more than half.
    """
    validity = max(0.0, next_update - this_update)
    return min(max(EXPIRY_MARGIN_MIN, validity * EXPIRY_MARGIN_SHARE), validity / 2)


def must_withdraw(held: dict | None, now: float) -> bool:
    """True when a held response is missing, invalid or inside its expiry margin."""
    if not is_valid(held, now):
        return True
    return now >= held["next_update"] - expiry_margin(held["this_update"], held["next_update"])
