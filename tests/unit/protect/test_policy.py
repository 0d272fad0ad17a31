"""The keeper's refresh policy: when to refresh, how to back off, what may replace a held response."""
from __future__ import annotations

from hypothesis import given, strategies as st

from ansible_collections.ocsp.stapling.plugins.module_utils.protect import policy

T0 = 1_800_000_000.0
seconds = st.floats(min_value=60, max_value=30 * 86400, allow_nan=False)


def response(this_update, next_update, verified=True):
    return {"verified": verified, "this_update": this_update, "next_update": next_update}


def test_a_seven_day_response_is_refreshed_after_half_its_validity():
    week = 7 * 86400
    assert policy.refresh_due(T0, T0 + week) == T0 + week / 2


@given(validity=seconds)
def test_refresh_is_due_no_later_than_a_third_left_and_no_later_than_half_passed(validity):
    due = policy.refresh_due(T0, T0 + validity)
    assert T0 < due <= T0 + validity / 2 + 1e-6
    assert due <= T0 + validity - validity / 3 + 1e-6


def test_backoff_starts_at_30_seconds_and_doubles_to_the_cap():
    delays = [policy.backoff_delay(n, rand=0.0) for n in range(1, 12)]
    assert delays[:4] == [30, 60, 120, 240]
    assert delays[-1] == policy.BACKOFF_CAP
    assert policy.backoff_delay(0) == 0


@given(failures=st.integers(min_value=1, max_value=500), rand=st.floats(min_value=0, max_value=1))
def test_backoff_with_jitter_stays_between_its_bounds(failures, rand):
    nominal = min(policy.BACKOFF_CAP, 30 * 2 ** min(failures - 1, 62))
    delay = policy.backoff_delay(failures, rand=rand)
    assert nominal * (1 - policy.JITTER) - 1e-9 <= delay <= nominal


def test_jitter_spreads_retries():
    assert policy.backoff_delay(3, rand=0.0) != policy.backoff_delay(3, rand=1.0)


def test_next_refresh_nothing_held_is_now_and_after_failures_is_the_backoff():
    assert policy.next_refresh(T0, None, 0) == T0
    assert policy.next_refresh(T0, response(T0 - 10, T0 + 3600), 2, rand=0.0) == T0 + 60
    assert policy.next_refresh(T0, response(T0 - 10, T0 + 3600), 0) == T0 - 10 + 1805


@given(held_this=st.floats(min_value=-86400, max_value=0), validity=seconds,
       cand_shift=st.floats(min_value=-86400, max_value=86400), cand_validity=seconds,
       cand_verified=st.booleans(), now_shift=st.floats(min_value=0, max_value=86400))
def test_a_valid_held_response_is_only_replaced_by_a_verified_newer_valid_one(
        held_this, validity, cand_shift, cand_validity, cand_verified, now_shift):
    held = response(T0 + held_this, T0 + held_this + validity)
    cand = response(held["this_update"] + cand_shift, held["this_update"] + cand_shift + cand_validity, cand_verified)
    now = T0 + now_shift
    replace, reason = policy.should_replace(held, cand, now)
    assert reason
    if replace:
        assert cand_verified
        assert cand["this_update"] <= now < cand["next_update"]
        if policy.is_valid(held, now):
            assert cand["this_update"] > held["this_update"]
            assert cand["next_update"] >= held["next_update"]


def test_errors_older_and_unverified_responses_never_replace():
    held = response(T0 - 60, T0 + 3600)
    assert not policy.should_replace(held, response(T0 - 30, T0 + 7200, verified=False), T0)[0]
    assert not policy.should_replace(held, response(T0 - 120, T0 + 7200), T0)[0]
    assert not policy.should_replace(held, response(T0 - 86400, T0 - 3600), T0)[0]
    assert not policy.should_replace(held, {"verified": False, "this_update": None, "next_update": None}, T0)[0]
    assert policy.should_replace(held, response(T0 - 10, T0 + 7200), T0)[0]
    assert policy.should_replace(None, response(T0 - 10, T0 + 7200), T0)[0]
    assert policy.should_replace(response(T0 - 7200, T0 - 60), response(T0 - 10, T0 + 60), T0)[0]


def test_a_held_response_is_withdrawn_before_it_expires():
    held = response(T0, T0 + 3600)
    assert not policy.must_withdraw(held, T0 + 3000)
    assert policy.must_withdraw(held, T0 + 3600 - 180)   # 5 % of an hour before nextUpdate
    assert policy.must_withdraw(held, T0 + 3600)
    assert policy.must_withdraw(None, T0)
    short = response(T0, T0 + 120)
    assert policy.expiry_margin(T0, T0 + 120) == 60
    assert policy.must_withdraw(short, T0 + 61)
    assert not policy.must_withdraw(short, T0 + 59)


@given(validity=seconds, at=st.floats(min_value=0, max_value=1))
def test_withdrawal_always_happens_before_next_update(validity, at):
    held = response(T0, T0 + validity)
    margin = policy.expiry_margin(T0, T0 + validity)
    assert 0 < margin <= validity / 2
    now = T0 + validity * at
    if now >= T0 + validity - margin:
        assert policy.must_withdraw(held, now)
