"""`decide_access` over every state, and `settle`: which record a change leaves.

Each answer must hold together: `api_access_enabled` exactly when access is not none, soft
suspension exactly when it is reduced, and a multiplier that fits the level."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from meterbill.domain.access import (
    SUBSCRIPTION_STATUSES,
    AccessDecision,
    AccessFacts,
    decide_access,
    is_live,
    settle,
)
from meterbill.domain.dunning import (
    CANCELED,
    GOOD_STANDING,
    TRIAL_GRACE,
    TRIAL_SUSPENDED,
    DunningPolicy,
    DunningState,
    InvoiceFacts,
    decide,
    decide_manual,
    load_policy,
    parse_policy,
)

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def policy() -> DunningPolicy:
    return load_policy()  # the packaged dunning.toml


def facts(status: str, state: str = GOOD_STANDING, failures: int = 0, *,
          cancel_at_period_end: bool = False) -> AccessFacts:
    return AccessFacts(status, cancel_at_period_end, DunningState(state, failures, "in_1"),
                       "sub_1")


def consistent(decision: AccessDecision) -> None:
    assert decision.api_access_enabled is (decision.access != "none")
    assert decision.soft_suspended is (decision.access == "reduced")
    low, high = {"full": (1.0, 1.0), "reduced": (0.01, 0.99), "none": (0.0, 0.0)}[
        decision.access]
    assert low <= decision.rate_limit_multiplier <= high
    assert (decision.billing_status == "suspended") <= (decision.access == "none")


@pytest.mark.parametrize(("status", "access", "multiplier", "state", "billing"), [
    ("trialing", "full", 1.0, GOOD_STANDING, "trialing"),
    ("active", "full", 1.0, GOOD_STANDING, "active"),
    ("past_due", "full", 1.0, GOOD_STANDING, "past_due"),
    ("incomplete", "reduced", 0.5, GOOD_STANDING, "incomplete"),  # being confirmed
    ("unpaid", "none", 0.0, GOOD_STANDING, "unpaid"),
    ("paused", "none", 0.0, TRIAL_SUSPENDED, "suspended"),
    ("canceled", "none", 0.0, CANCELED, "canceled"),
    ("incomplete_expired", "none", 0.0, CANCELED, "incomplete_expired"),
    ("none", "none", 0.0, GOOD_STANDING, "none"),
])
def test_in_good_standing_stripes_status_decides(policy: DunningPolicy, status: str,
                                                  access: str, multiplier: float, state: str,
                                                  billing: str) -> None:
    decision = decide_access(policy, facts(status))
    assert (decision.access, decision.rate_limit_multiplier, decision.dunning_state,
            decision.billing_status) == (access, multiplier, state, billing)
    consistent(decision)


@pytest.mark.parametrize(("status", "state", "failures", "access", "multiplier", "billing",
                          "reason"), [
    ("past_due", "reminder", 1, "full", 1.0, "past_due",
     "payment overdue after 1 failed payment attempt (reminder)"),
    ("past_due", "warning", 2, "full", 1.0, "past_due",
     "payment overdue after 2 failed payment attempts (warning)"),
    ("past_due", "final_warning", 3, "reduced", 0.5, "past_due",
     "payment overdue: reduced access after 3 failed payment attempts (final_warning)"),
    ("past_due", "suspended", 4, "none", 0.0, "suspended",
     "suspended for non-payment after 4 failed payment attempts"),
    ("unpaid", "suspended", 4, "none", 0.0, "suspended",
     "suspended for non-payment after 4 failed payment attempts"),
    ("trialing", "final_warning", 3, "reduced", 0.5, "trialing",
     "payment overdue: reduced access after 3 failed payment attempts (final_warning)"),
    ("past_due", TRIAL_GRACE, 1, "full", 1.0, "past_due",
     "trial ended without a payment method: grace period"),
    ("past_due", TRIAL_SUSPENDED, 2, "none", 0.0, "suspended",
     "trial ended without a payment method: suspended"),
    ("active", TRIAL_SUSPENDED, 2, "none", 0.0, "suspended",
     "trial ended without a payment method: suspended"),
])
def test_a_dunning_or_trial_state_decides_while_the_subscription_lives(
        policy: DunningPolicy, status: str, state: str, failures: int, access: str,
        multiplier: float, billing: str, reason: str) -> None:
    decision = decide_access(policy, facts(status, state, failures))
    assert (decision.access, decision.rate_limit_multiplier, decision.billing_status,
            decision.reason, decision.dunning_state) == (access, multiplier, billing, reason,
                                                         state)
    consistent(decision)


@pytest.mark.parametrize("state", ["reminder", "final_warning", "suspended", GOOD_STANDING])
def test_an_unpaid_first_payment_is_reduced_whatever_the_dunning_step(
        policy: DunningPolicy, state: str) -> None:
    # `incomplete`: the first payment awaits the cardholder's authentication; dunning (about
    # renewals of a paid service) does not apply, and the tenant stays in good standing.
    decision = decide_access(policy, facts("incomplete", state, 1))
    assert (decision.access, decision.rate_limit_multiplier, decision.dunning_state,
            decision.billing_status) == ("reduced", 0.5, GOOD_STANDING, "incomplete")
    consistent(decision)


@pytest.mark.parametrize("state", ["reminder", "final_warning", "suspended", TRIAL_GRACE,
                                   TRIAL_SUSPENDED, GOOD_STANDING, CANCELED])
@pytest.mark.parametrize("status", ["canceled", "incomplete_expired"])
def test_an_ended_subscription_wins_over_every_step(policy: DunningPolicy, state: str,
                                                    status: str) -> None:
    decision = decide_access(policy, facts(status, state, 4))
    assert (decision.access, decision.dunning_state, decision.billing_status,
            decision.reason) == ("none", CANCELED, status, f"subscription {status}")
    assert decision.api_access_enabled is False


def test_cancel_at_period_end_keeps_access_until_stripe_ends_it(policy: DunningPolicy) -> None:
    decision = decide_access(policy, facts("active", cancel_at_period_end=True))
    assert (decision.access, decision.dunning_state, decision.reason) == (
        "full", GOOD_STANDING, "subscription active; cancels at the period end")
    ended = decide_access(policy, facts("canceled", cancel_at_period_end=True))
    assert (ended.access, ended.dunning_state) == ("none", CANCELED)


def test_a_live_subscription_after_a_canceled_one_is_good_standing(
        policy: DunningPolicy) -> None:
    decision = decide_access(policy, facts("trialing", CANCELED))
    assert (decision.access, decision.dunning_state) == ("full", GOOD_STANDING)
    # Without a subscription at all, the state is kept and nothing is allowed.
    alone = decide_access(policy, facts("none", "final_warning", 3))
    assert (alone.access, alone.dunning_state, alone.reason) == (
        "none", "final_warning", "no subscription")


def test_the_policys_own_multiplier_and_every_combination_holds_together() -> None:
    policy = parse_policy({"steps": [
        {"failures": 1, "name": "slowed", "access": "reduced", "rate_limit_multiplier": 0.25},
        {"failures": 3, "name": "cut_off", "access": "none"}]})
    slowed = decide_access(policy, facts("past_due", "slowed", 1))
    assert (slowed.access, slowed.rate_limit_multiplier) == ("reduced", 0.25)
    for status in SUBSCRIPTION_STATUSES:
        for state in (GOOD_STANDING, "slowed", "cut_off", TRIAL_GRACE, TRIAL_SUSPENDED,
                      CANCELED):
            consistent(decide_access(policy, facts(status, state, 2)))
    with pytest.raises(ValueError, match="Unknown subscription status"):
        decide_access(policy, facts("suspended"))  # an answer, never a fact


# --- settle: the record of a change --------------------------------------------------------


def test_the_last_retry_and_the_deletion_leave_one_cancellation(policy: DunningPolicy) -> None:
    current = DunningState("final_warning", 3, "in_1")
    proposed = decide(policy, current, InvoiceFacts("in_1", "open", 4, NOW))
    assert proposed.state.state == "suspended"  # what the invoice alone would say
    canceled = facts("canceled", proposed.state.state, 4)
    record = settle(policy, current, canceled, decide_access(policy, canceled), proposed)
    assert record.transition is not None
    assert (record.transition.from_state, record.transition.to_state,
            record.transition.step) == ("final_warning", CANCELED, "cancellation")
    assert [n.kind for n in record.notices] == ["subscription_canceled"]
    # Whichever event comes second finds the tenant canceled: nothing more to record.
    after = DunningState(CANCELED, 0, None)
    again = facts("canceled", CANCELED)
    for second in (None, decide(policy, after, InvoiceFacts("in_1", "open", 4, NOW))):
        late = settle(policy, after, again, decide_access(policy, again), second)
        assert late.transition is None and late.notices == ()


def test_a_step_the_facts_keep_is_recorded_as_the_policy_decided(
        policy: DunningPolicy) -> None:
    current = DunningState("warning", 2, "in_1")
    proposed = decide(policy, current, InvoiceFacts("in_1", "open", 3, NOW))
    kept = facts("past_due", proposed.state.state, 3)
    assert settle(policy, current, kept, decide_access(policy, kept), proposed) is proposed


def test_a_paused_trial_and_a_new_subscription(policy: DunningPolicy) -> None:
    paused = facts("paused")
    record = settle(policy, DunningState(), paused, decide_access(policy, paused))
    assert record.transition is not None and record.transition.step == "trial_suspension"
    assert [n.kind for n in record.notices] == ["trial_ended_suspended"]
    back = facts("trialing", CANCELED)
    record = settle(policy, DunningState(CANCELED), back, decide_access(policy, back))
    assert record.transition is not None
    assert (record.transition.to_state, record.transition.step) == (GOOD_STANDING,
                                                                    "resubscribed")
    assert record.notices == ()


@pytest.mark.parametrize(("amount_paid", "receipts"), [
    (9900, ["payment_received"]), (None, ["payment_received"]), (0, [])])
def test_a_receipt_only_when_money_came(policy: DunningPolicy, amount_paid: int | None,
                                        receipts: list[str]) -> None:
    current = DunningState("reminder", 1, "in_1")
    paid = decide(policy, current, InvoiceFacts("in_1", "paid", 1, NOW,
                                                amount_paid=amount_paid))
    assert paid.state.state == GOOD_STANDING  # access comes back either way
    assert [n.kind for n in paid.notices] == receipts
    reset = decide_manual(policy, current, 0, NOW)  # the operator's reset: no money came
    assert reset.state.state == GOOD_STANDING and reset.notices == ()


def test_live_statuses() -> None:
    assert is_live("active") and is_live("past_due") and is_live("trialing")
    assert not is_live("canceled") and not is_live("incomplete_expired") and not is_live("none")
