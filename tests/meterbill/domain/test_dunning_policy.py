"""The dunning policy as a table: each failure count, decline jumps, monotonic steps, recovery,
trials, manual steps, the suspension date, and the TOML checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from meterbill.domain.dunning import (
    CANCELED,
    GOOD_STANDING,
    TRIAL_GRACE,
    TRIAL_SUSPENDED,
    DunningPolicy,
    DunningState,
    Effects,
    InvoiceFacts,
    decide,
    decide_manual,
    load_policy,
    parse_policy,
    suspension_date,
)
from meterbill.domain.errors import ConfigurationError

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def policy() -> DunningPolicy:
    return load_policy()


def failed(count: int, invoice: str = "in_1", decline: str | None = None,
           next_attempt: datetime | None = None, **more: Any) -> InvoiceFacts:
    return InvoiceFacts(invoice, "open", count, NOW, decline_code=decline,
                        next_payment_attempt=next_attempt, **more)


def test_the_packaged_defaults_are_the_issues(policy: DunningPolicy) -> None:
    table = [(s.failures, s.name, s.notice, s.effects) for s in policy.steps]
    assert table == [
        (1, "reminder", "dunning_reminder", Effects("full", 1.0)),
        (2, "warning", "dunning_warning", Effects("full", 1.0)),
        (3, "final_warning", "dunning_final_warning", Effects("reduced", 0.5)),
        (4, "suspended", "dunning_suspended", Effects("none", 0.0)),
    ]
    assert policy.effects_of("final_warning").soft_suspended  # type: ignore[union-attr]
    assert policy.effects_of("suspended").suspended  # type: ignore[union-attr]
    assert {"stolen_card", "lost_card", "pickup_card", "fraudulent"} <= \
        policy.hard_decline_codes
    assert "expired_card" not in policy.hard_decline_codes
    assert policy.decline_jump_to == "warning"
    assert policy.effects_of(GOOD_STANDING) is None and policy.effects_of(CANCELED) is None


@pytest.mark.parametrize(("count", "state", "notice"), [
    (1, "reminder", "dunning_reminder"),
    (2, "warning", "dunning_warning"),
    (3, "final_warning", "dunning_final_warning"),
    (4, "suspended", "dunning_suspended"),
    (7, "suspended", "dunning_suspended"),
])
def test_each_failure_count_from_good_standing(policy: DunningPolicy, count: int, state: str,
                                               notice: str) -> None:
    decision = decide(policy, DunningState(), failed(count))
    assert decision.state == DunningState(state, count, "in_1")
    assert decision.transition is not None
    assert (decision.transition.from_state, decision.transition.to_state) == (
        GOOD_STANDING, state)
    assert [n.kind for n in decision.notices] == [notice]
    assert decision.notices[0].state == state


def test_the_path_step_by_step(policy: DunningPolicy) -> None:
    state, seen = DunningState(), []
    for count in (1, 2, 3, 4):
        decision = decide(policy, state, failed(count))
        state = decision.state
        seen.append((state.state, [n.kind for n in decision.notices]))
    assert seen == [("reminder", ["dunning_reminder"]), ("warning", ["dunning_warning"]),
                    ("final_warning", ["dunning_final_warning"]),
                    ("suspended", ["dunning_suspended"])]


def test_a_repeated_or_stale_read_changes_nothing(policy: DunningPolicy) -> None:
    at_warning = DunningState("warning", 2, "in_1")
    again = decide(policy, at_warning, failed(2))
    assert (again.state, again.transition, again.notices) == (at_warning, None, ())
    stale = decide(policy, at_warning, failed(1))  # an older copy of the same invoice
    assert (stale.state, stale.transition, stale.notices) == (at_warning, None, ())


def test_a_newer_invoice_never_takes_a_step_back(policy: DunningPolicy) -> None:
    suspended = DunningState("suspended", 4, "in_old")
    decision = decide(policy, suspended, failed(1, invoice="in_new"))
    assert decision.state.state == "suspended" and decision.transition is None
    assert decision.notices == ()


def test_a_late_processing_jumps_to_where_stripe_is(policy: DunningPolicy) -> None:
    # Events held up until the third attempt: one transition, one notice (the current one).
    decision = decide(policy, DunningState("reminder", 1, "in_1"), failed(3))
    assert decision.transition is not None and decision.transition.to_state == "final_warning"
    assert [n.kind for n in decision.notices] == ["dunning_final_warning"]


@pytest.mark.parametrize("code", ["stolen_card", "lost_card", "pickup_card", "fraudulent"])
def test_a_decline_retrying_cannot_fix_jumps_to_the_warning(policy: DunningPolicy,
                                                            code: str) -> None:
    decision = decide(policy, DunningState(), failed(1, decline=code))
    assert decision.state.state == "warning" and decision.state.failures == 1
    assert decision.transition is not None and code in decision.transition.detail
    assert [n.kind for n in decision.notices] == ["dunning_warning"]


@pytest.mark.parametrize("code", ["generic_decline", "insufficient_funds", "expired_card", None])
def test_other_declines_follow_the_count(policy: DunningPolicy, code: str | None) -> None:
    assert decide(policy, DunningState(), failed(1, decline=code)).state.state == "reminder"


def test_a_hard_decline_does_not_pull_a_later_step_back(policy: DunningPolicy) -> None:
    decision = decide(policy, DunningState("final_warning", 3, "in_1"),
                      failed(3, decline="stolen_card"))
    assert decision.state.state == "final_warning" and decision.transition is None


@pytest.mark.parametrize("status", ["paid", "void"])
def test_payment_or_void_restores(policy: DunningPolicy, status: str) -> None:
    decision = decide(policy, DunningState("suspended", 4, "in_1"),
                      InvoiceFacts("in_1", status, 4, NOW))
    assert decision.state == DunningState()
    assert decision.transition is not None
    assert decision.transition.step == ("recovery" if status == "paid" else "void")
    # A voided invoice is not a payment: no "payment received" (unless the policy says so).
    assert [n.kind for n in decision.notices] == (
        ["payment_received"] if status == "paid" else [])


def test_a_paid_invoice_in_good_standing_is_no_transition(policy: DunningPolicy) -> None:
    decision = decide(policy, DunningState(), InvoiceFacts("in_1", "paid", 1, NOW))
    assert decision.transition is None and decision.notices == ()


@pytest.mark.parametrize(("status", "count"), [("open", 0), ("draft", 0),
                                                ("uncollectible", 4)])
def test_nothing_to_decide(policy: DunningPolicy, status: str, count: int) -> None:
    current = DunningState("final_warning", 3, "in_1")
    decision = decide(policy, current, InvoiceFacts("in_1", status, count, NOW))
    assert decision.state == current and decision.transition is None


def test_canceled_stays_canceled(policy: DunningPolicy) -> None:
    current = DunningState(CANCELED)
    assert decide(policy, current, failed(2)).state == current
    assert decide(policy, current, InvoiceFacts("in_1", "paid", 1, NOW)).transition is None


def test_a_trial_without_a_card_gets_grace_then_suspension(policy: DunningPolicy) -> None:
    ended = NOW - timedelta(hours=1)
    grace = decide(policy, DunningState(), failed(1, trial_ended_at=ended))
    assert grace.state.state == TRIAL_GRACE and grace.notices == ()
    assert policy.effects_of(TRIAL_GRACE) == Effects("full", 1.0)
    later = InvoiceFacts("in_1", "open", 2, ended + 3 * DAY, trial_ended_at=ended)
    suspended = decide(policy, grace.state, later)
    assert suspended.state.state == TRIAL_SUSPENDED
    assert [n.kind for n in suspended.notices] == ["trial_ended_suspended"]
    assert policy.effects_of(TRIAL_SUSPENDED) == Effects("none", 0.0)
    assert decide(policy, suspended.state, later).transition is None
    # A card added later that fails too does not lift the suspension; only a payment does.
    assert decide(policy, suspended.state, failed(2)).state.state == TRIAL_SUSPENDED
    paid = decide(policy, suspended.state, InvoiceFacts("in_1", "paid", 2, NOW))
    assert paid.state == DunningState() and [n.kind for n in paid.notices] == [
        "payment_received"]


@pytest.mark.parametrize(("count", "state", "notices"), [
    (0, GOOD_STANDING, []),  # the operator's reset: no money came, no receipt
    (1, "reminder", ["dunning_reminder"]),
    (3, "final_warning", ["dunning_final_warning"]), (9, "suspended", ["dunning_suspended"]),
])
def test_manual_applies_exactly_the_step_for_the_count(policy: DunningPolicy, count: int,
                                                        state: str, notices: list[str]) -> None:
    current = DunningState("warning", 2, "in_1")
    decision = decide_manual(policy, current, count, NOW)
    assert decision.state.state == state and decision.state.failures == count
    assert [n.kind for n in decision.notices] == notices
    with pytest.raises(ValueError):
        decide_manual(policy, current, -1, NOW)


def test_the_warning_names_the_suspension_date(policy: DunningPolicy) -> None:
    first = NOW
    # Stripe: attempt 2 failed on day 4; the next (3) is on day 7; suspension at 4 on day 8.
    decision = decide(policy, DunningState("reminder", 1, "in_1"),
                      failed(2, next_attempt=first + 6 * DAY))
    facts = decision.notices[0].facts
    assert facts["suspension_at"] == first + 7 * DAY
    assert facts["next_step"] == "suspension" and facts["next_step_at"] == first + 6 * DAY
    assert facts["attempt_count"] == 2
    # At the final warning the next attempt is the suspending one.
    assert suspension_date(policy, 3, first + 7 * DAY) == first + 7 * DAY
    assert suspension_date(policy, 1, first + 3 * DAY) == first + 7 * DAY
    assert suspension_date(policy, 2, None) is None
    suspended = decide(policy, DunningState("final_warning", 3, "in_1"), failed(4))
    assert suspended.notices[0].facts["next_step"] is None


# --- the file --------------------------------------------------------------------------------


def test_a_custom_file_is_used(tmp_path: Path) -> None:
    path = tmp_path / "dunning.toml"
    path.write_text(
        '[[steps]]\nfailures = 2\nname = "nudge"\nnotice = "dunning_reminder"\n'
        '[[steps]]\nfailures = 5\nname = "cut_off"\nnotice = "dunning_suspended"\n'
        'access = "none"\n[trial]\ngrace_days = 0\n[recovery]\nnotify_on_void = true\n')
    policy = load_policy(path)
    assert [s.name for s in policy.steps] == ["nudge", "cut_off"]
    assert decide(policy, DunningState(), failed(1)).transition is None
    assert decide(policy, DunningState(), failed(4)).state.state == "nudge"
    assert policy.trial.grace_days == 0 and policy.notify_on_void
    assert policy.source == str(path)


@pytest.mark.parametrize(("text", "message"), [
    ("steps = []", "no [[steps]]"),
    ('[[steps]]\nfailures = 0\nname = "a"', "failures must be a whole number >= 1"),
    ('[[steps]]\nfailures = 2\nname = "a"\n[[steps]]\nfailures = 1\nname = "b"',
     "increasing `failures`"),
    ('[[steps]]\nfailures = 1\nname = "a"\n[[steps]]\nfailures = 2\nname = "a"', "unique"),
    ('[[steps]]\nfailures = 1\nname = "canceled"', "not one of"),
    ('[[steps]]\nfailures = 1\nname = "a"\nnotice = "dunning_remindr"', "dunning_remindr"),
    ('[[steps]]\nfailures = 1\nname = "a"\naccess = "partial"', "must be one of full"),
    ('[[steps]]\nfailures = 1\nname = "a"\naccess = "reduced"\nrate_limit_multiplier = 1.5',
     "does not fit access 'reduced'"),
    ('[[steps]]\nfailures = 1\nname = "a"\nacess = "full"', "unknown field(s) ['acess']"),
    ('[[steps]]\nfailures = 1\nname = "a"\n[decline_codes]\njump_to = "b"', "not a step"),
    ('[[steps]]\nfailures = 1\nname = "a"\n[decline_codes]\ncodes = ["Stolen Card"]',
     "decline codes"),
    ('[[steps]]\nfailures = 1\nname = "a"\n[retry_schedule]\n'
     'days_after_first_failure = [6, 3]', "increasing whole days"),
    ('[[steps]]\nfailures = 1\nname = "a"\n[trial]\ngrace_days = -1', "grace_days"),
    ("[[steps]\n", "not valid TOML"),
])
def test_bad_files_say_what_to_fix(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigurationError) as raised:
        load_policy(path)
    assert message in str(raised.value) and str(path) in str(raised.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="Cannot read DUNNING_POLICY_FILE"):
        load_policy(tmp_path / "nope.toml")


def test_parse_policy_defaults_every_optional_section() -> None:
    policy = parse_policy({"steps": [{"failures": 1, "name": "only"}]})
    assert policy.steps[0].notice is None and policy.steps[0].effects == Effects("full", 1.0)
    assert policy.recovery_notice == "payment_received"
    assert policy.cancellation_notice == "subscription_canceled"
    assert policy.retry_days == (3, 6, 7) and policy.suspension_step is None
