"""A tenant's access, decided from the facts by one function: `decide_access`.

The facts are Stripe's status of the tenant's current subscription (and whether it cancels at
the period end) and the dunning policy's state of the tenant (`domain.dunning.decide` on the
deciding invoice, or the operator's manual step; the trial states are dunning states too).
The answer is the access level, the rate-limit multiplier, the reason, the dunning state the
facts imply and the billing status to show. Everything that shows access (the tenant row, the
summary, the entitlement, `tenant.access_changed`) comes from this answer, so they never
disagree.

Precedence, first match wins:

1. The subscription ended (`canceled`, `incomplete_expired`): `canceled`, access none. A
   terminal fact wins over any dunning step, whenever the step's event arrives.
2. Stripe paused the subscription (a trial ended without a payment method, `end_behavior
   pause`): `trial_suspended`, access none.
3. No subscription: access none; the dunning state is kept as it is.
4. The first payment has not been made (`incomplete`): reduced, in good standing, whatever
   the dunning policy would say about the open first invoice. Since meterbill charges the
   first invoice at creation and cancels a declined one at once, a subscription is
   `incomplete` only while its first payment waits for the cardholder to authenticate
   (3-D Secure) on the hosted invoice page. The customer has given a card and is one
   confirmation away from paying, so locking them out (none) would punish their bank's check;
   but nothing has been paid yet, so not full either. Dunning is about renewals of a service
   that was paid for, so its steps (and their "payment failed" emails) do not apply. The wait
   is short by construction: Stripe ends it after 23 hours (`incomplete_expired`, rule 1).
5. A dunning step or trial state is in force: the policy's step decides (the policy is the
   one authority on what an unpaid renewal costs). `billing_status` shows `suspended` when
   the step takes all access.
6. Good standing: Stripe's status decides (`unpaid` is none). A tenant that was `canceled`
   and has a live subscription again is in good standing.

`settle` turns the decision into the record of a change: which transition the timeline gets
and which notices are due. When a terminal fact overrides the step a payment event proposed,
the record is the cancellation, not the step. Stripe sends `invoice.payment_failed` (the last
retry) and `customer.subscription.deleted` together; whichever is handled first re-reads
Stripe, sees the subscription canceled and records `<step> -> canceled` with the single
`subscription_canceled` notice; the other then finds nothing to change. So the pair reads the
same in any order, and the customer is not told "suspended" a moment before "canceled".
"""

from __future__ import annotations

from dataclasses import dataclass

from .dunning import (
    CANCELED,
    GOOD_STANDING,
    TRIAL_GRACE,
    TRIAL_SUSPENDED,
    Access,
    Decision,
    DunningPolicy,
    DunningState,
    NoticeDue,
    OverdueStep,
    Transition,
)

# Stripe subscription statuses, plus "none" for a tenant without a subscription and
# "suspended" for one the dunning policy suspended (its subscription is past_due or unpaid).
BILLING_STATUSES = ("none", "incomplete", "incomplete_expired", "trialing", "active",
                    "past_due", "canceled", "unpaid", "paused", "suspended")
# Statuses in which a subscription still exists and can change or be canceled.
LIVE_STATUSES = frozenset({"incomplete", "trialing", "active", "past_due", "unpaid", "paused",
                           "suspended"})
# Stripe ended the subscription: nothing brings it back.
TERMINAL_STATUSES = frozenset({"canceled", "incomplete_expired"})
# What Stripe's status alone allows, in good standing.
_STATUS_ACCESS: dict[str, Access] = {
    "trialing": "full",
    "active": "full",
    "past_due": "full",  # Stripe retries; the policy's steps narrow access as they come
    # The first payment waits for the cardholder's authentication (rule 4 says why reduced).
    "incomplete": "reduced",
    "unpaid": "none",
    "paused": "none",
    "canceled": "none",
    "incomplete_expired": "none",
    "none": "none",
}
_RATE_LIMIT: dict[Access, float] = {"full": 1.0, "reduced": 0.5, "none": 0.0}
# Subscription statuses the facts may carry ("suspended" is an answer, never a fact).
SUBSCRIPTION_STATUSES = tuple(s for s in BILLING_STATUSES if s != "suspended")


@dataclass(frozen=True)
class AccessFacts:
    subscription_status: str = "none"  # Stripe's status of the current subscription, or none
    cancel_at_period_end: bool = False
    dunning: DunningState = DunningState()  # the policy's state after deciding on the facts
    subscription_id: str | None = None  # names the subscription in timeline details


@dataclass(frozen=True)
class AccessDecision:
    access: Access
    rate_limit_multiplier: float
    reason: str
    dunning_state: str
    billing_status: str  # Stripe's status, or "suspended" while the policy takes all access

    @property
    def api_access_enabled(self) -> bool:
        return self.access != "none"

    @property
    def soft_suspended(self) -> bool:
        return self.access == "reduced"


def decide_access(policy: DunningPolicy, facts: AccessFacts) -> AccessDecision:
    """What the tenant may use, given the facts (see the module docstring). Pure."""
    status = facts.subscription_status
    if status not in SUBSCRIPTION_STATUSES:
        raise ValueError(f"Unknown subscription status {status!r}; expected one of "
                         f"{', '.join(SUBSCRIPTION_STATUSES)}")
    state = facts.dunning.state
    if status in TERMINAL_STATUSES:
        return AccessDecision("none", 0.0, f"subscription {status}", CANCELED, status)
    if status == "paused":
        return AccessDecision("none", 0.0, _trial_reason(TRIAL_SUSPENDED), TRIAL_SUSPENDED,
                              "suspended")
    if status == "none":
        return AccessDecision("none", 0.0, "no subscription", state, status)
    if state == CANCELED:  # a live subscription after a canceled one: a new start
        state = GOOD_STANDING
    if status == "incomplete":  # rule 4: the first payment waits; dunning does not apply
        return AccessDecision("reduced", _RATE_LIMIT["reduced"],
                              "subscription incomplete: the first payment awaits the "
                              "customer's authentication", GOOD_STANDING, status)
    effects = policy.effects_of(state)
    if effects is None:
        access = _STATUS_ACCESS[status]
        reason = f"subscription {status}"
        if facts.cancel_at_period_end:
            reason += "; cancels at the period end"
        return AccessDecision(access, _RATE_LIMIT[access], reason, state, status)
    return AccessDecision(effects.access, effects.rate_limit_multiplier,
                          _dunning_reason(policy, state, facts.dunning.failures), state,
                          "suspended" if effects.suspended else status)


def settle(policy: DunningPolicy, current: DunningState, facts: AccessFacts,
           decision: AccessDecision, proposed: Decision | None = None) -> Decision:
    """The record of moving from `current` to `decision`: the new dunning state, the timeline
    transition (None: the state stays) and the notices due. `proposed` is the policy's
    decision on the invoice or the operator's step, kept when the facts do not override it."""
    target = decision.dunning_state
    if proposed is not None and proposed.state.state == target:
        if target == current.state:
            return Decision(proposed.state, None, (), proposed.note)
        return proposed
    if target == current.state:
        return Decision(facts.dunning if facts.dunning.state == target else current, None, (),
                        f"stays {target}")
    subscription = facts.subscription_id or "(none)"
    if target == CANCELED:
        notices = (NoticeDue(policy.cancellation_notice, CANCELED),) \
            if policy.cancellation_notice else ()
        detail = (f"subscription {subscription} {facts.subscription_status} in Stripe; "
                  "access off")
        return Decision(DunningState(CANCELED, 0, None),
                        Transition(current.state, CANCELED, "cancellation", detail), notices,
                        detail)
    if target == TRIAL_SUSPENDED:
        notices = (NoticeDue(policy.trial.suspended_notice, TRIAL_SUSPENDED),) \
            if policy.trial.suspended_notice else ()
        detail = (f"subscription {subscription} paused: the trial ended without a payment "
                  "method")
        return Decision(DunningState(TRIAL_SUSPENDED, 0, None),
                        Transition(current.state, TRIAL_SUSPENDED, "trial_suspension", detail),
                        notices, detail)
    if current.state == CANCELED:  # a live subscription after a canceled one (rule 6)
        detail = f"new subscription {subscription} ({facts.subscription_status})"
        return Decision(DunningState(), Transition(current.state, target, "resubscribed",
                                                   detail), (), detail)
    detail = f"subscription {subscription} {facts.subscription_status}"  # not reached today
    return Decision(facts.dunning, Transition(current.state, target, "status", detail), (),
                    detail)


def _dunning_reason(policy: DunningPolicy, state: str, failures: int) -> str:
    step = policy.step_named(state)
    if step is None:
        return _trial_reason(state)
    if isinstance(step, OverdueStep):  # `failures` holds the days past due
        late = f"invoice {failures} day{'s' if failures != 1 else ''} past due"
        if step.effects.suspended:
            return f"suspended for non-payment: {late}"
        if step.effects.soft_suspended:
            return f"reduced access: {late} ({state})"
        return f"{late} ({state})"
    attempts = f"{failures} failed payment attempt{'s' if failures != 1 else ''}"
    if step.effects.suspended:
        return f"suspended for non-payment after {attempts}"
    if step.effects.soft_suspended:
        return f"payment overdue: reduced access after {attempts} ({state})"
    return f"payment overdue after {attempts} ({state})"


def _trial_reason(state: str) -> str:
    if state == TRIAL_GRACE:
        return "trial ended without a payment method: grace period"
    return "trial ended without a payment method: suspended"


def is_live(status: str) -> bool:
    """Whether a subscription in `status` still exists and can change or be canceled."""
    return status in LIVE_STATUSES
