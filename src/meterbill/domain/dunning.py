"""The dunning policy as data, and `decide`, the one function that applies it.

A tenant is in one dunning state at a time (Kill Bill's overdue states): `good_standing`, one of
the policy's steps (by default `reminder`, `warning`, `final_warning`, `suspended`), the trial
states `trial_grace` and `trial_suspended`, or `canceled`. Each state says what access the
tenant keeps; `good_standing` and `canceled` leave it to the subscription's Stripe status.

`decide` takes the tenant's state and the facts of the invoice that decides it, as re-read from
Stripe, and returns the new state, its effects, the notices now due and the timeline entry. The
failure count is the invoice's `attempt_count`, never a count of events: a repeated or stale
event re-reads the same invoice and decides the same thing, so it changes nothing and no notice
goes out twice; and within one unpaid episode a step is never taken back (a stale read of an
older invoice cannot undo a suspension). Only a payment (or a void) ends the episode.

Invoices sent by email (`collection_method=send_invoice`) are never charged, so their
attempt count says nothing; the policy's `[overdue]` steps apply instead, by days past the due
date (`decide` on an open send_invoice invoice). The day the due date passes is day 1. The same
rules hold: a step is entered once per invoice, never taken back within the episode, and a
payment ends it.

The policy is read from TOML (`dunning.toml` in the package, or DUNNING_POLICY_FILE).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigurationError

Access = Literal["full", "reduced", "none"]
GOOD_STANDING = "good_standing"
TRIAL_GRACE = "trial_grace"
TRIAL_SUSPENDED = "trial_suspended"
CANCELED = "canceled"
RESERVED_STATES = frozenset({GOOD_STANDING, TRIAL_GRACE, TRIAL_SUSPENDED, CANCELED})

# The notices meterbill has templates for; a policy may name only these (or "" for none).
KNOWN_NOTICES = frozenset({
    "dunning_reminder", "dunning_warning", "dunning_final_warning", "dunning_suspended",
    "payment_received", "trial_ending_no_payment_method", "trial_ended_suspended",
    "subscription_canceled", "invoice_sent", "invoice_overdue",
})
ACCESS_LEVELS: tuple[Access, ...] = ("full", "reduced", "none")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_DECLINE_CODE = re.compile(r"^[a-z][a-z0-9_]{1,63}$")


@dataclass(frozen=True)
class Effects:
    """What a dunning state does to the tenant: its access and rate-limit multiplier.

    `reduced` is the soft suspension (`soft_suspended`); `none` is the full suspension
    (`api_access_enabled` false, `billing_status` suspended)."""

    access: Access
    rate_limit_multiplier: float

    @property
    def soft_suspended(self) -> bool:
        return self.access == "reduced"

    @property
    def suspended(self) -> bool:
        return self.access == "none"


@dataclass(frozen=True)
class Step:
    failures: int  # the attempt count from which this step applies
    name: str
    notice: str | None
    effects: Effects


@dataclass(frozen=True)
class OverdueStep:
    """A step for an emailed invoice unpaid `days` days past its due date (day 1: the due
    date has passed)."""

    days: int
    name: str
    notice: str | None
    effects: Effects


@dataclass(frozen=True)
class TrialRule:
    """A trial that ended without a payment method: a grace period, then suspension."""

    grace_days: int = 3
    grace: Effects = Effects("full", 1.0)
    suspended_notice: str | None = "trial_ended_suspended"
    reminder_notice: str | None = "trial_ending_no_payment_method"


@dataclass(frozen=True)
class DunningPolicy:
    steps: tuple[Step, ...]
    # Stripe's retry schedule (days after the first failed attempt), used only to name the
    # suspension date in the warnings; Stripe's own `next_payment_attempt` wins when it applies.
    retry_days: tuple[int, ...] = (3, 6, 7)
    hard_decline_codes: frozenset[str] = frozenset()
    decline_jump_to: str | None = None
    recovery_notice: str | None = "payment_received"
    notify_on_void: bool = False
    cancellation_notice: str | None = "subscription_canceled"
    trial: TrialRule = field(default_factory=TrialRule)
    source: str = "dunning policy"
    overdue_steps: tuple[OverdueStep, ...] = ()

    def step_for(self, failures: int) -> Step | None:
        """The step for `failures` failed attempts: the last one whose threshold it reached."""
        found = None
        for step in self.steps:
            if failures >= step.failures:
                found = step
        return found

    def step_named(self, name: str) -> Step | OverdueStep | None:
        every: tuple[Step | OverdueStep, ...] = (*self.steps, *self.overdue_steps)
        return next((s for s in every if s.name == name), None)

    def overdue_step_for(self, days: int) -> OverdueStep | None:
        """The overdue step for an invoice `days` days past due: the last one reached."""
        found = None
        for step in self.overdue_steps:
            if days >= step.days:
                found = step
        return found

    def rank(self, state: str) -> int:
        """How far along the dunning path `state` is (0 for non-step states); overdue steps
        rank after the payment steps."""
        every: tuple[Step | OverdueStep, ...] = (*self.steps, *self.overdue_steps)
        for index, step in enumerate(every, start=1):
            if step.name == state:
                return index
        return 0

    def is_dunning(self, state: str) -> bool:
        return self.rank(state) > 0 or state in (TRIAL_GRACE, TRIAL_SUSPENDED)

    def effects_of(self, state: str) -> Effects | None:
        """The access `state` grants, or None: follow the subscription's Stripe status."""
        step = self.step_named(state)
        if step is not None:
            return step.effects
        if state == TRIAL_GRACE:
            return self.trial.grace
        if state == TRIAL_SUSPENDED:
            return Effects("none", 0.0)
        return None

    @property
    def suspension_step(self) -> Step | None:
        return next((s for s in self.steps if s.effects.suspended), None)


@dataclass(frozen=True)
class DunningState:
    state: str = GOOD_STANDING
    failures: int = 0
    invoice_id: str | None = None  # the unpaid invoice the state is about


@dataclass(frozen=True)
class InvoiceFacts:
    """The deciding invoice as Stripe has it now, and what else the policy needs."""

    invoice_id: str
    status: str  # draft, open, paid, void, uncollectible
    attempt_count: int
    now: datetime
    decline_code: str | None = None
    next_payment_attempt: datetime | None = None
    # Set when the invoice is the first one after a trial and no payment method is on file.
    trial_ended_at: datetime | None = None
    amount_paid: int | None = None  # cents; None when unknown (counts as money received)
    collection_method: str = "charge_automatically"  # send_invoice: the overdue steps apply
    due_date: datetime | None = None


@dataclass(frozen=True)
class NoticeDue:
    kind: str
    state: str  # the state it announces: part of its once-only key with tenant and invoice
    facts: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Transition:
    from_state: str
    to_state: str
    step: str  # the rule that fired: a step name, recovery, void, cancellation, ...
    detail: str


@dataclass(frozen=True)
class Decision:
    state: DunningState
    transition: Transition | None = None
    notices: tuple[NoticeDue, ...] = ()
    note: str = ""


def decide(policy: DunningPolicy, current: DunningState, facts: InvoiceFacts) -> Decision:
    """Apply the policy to the deciding invoice. Pure: same inputs, same decision."""
    if current.state == CANCELED:
        return Decision(current, note="subscription canceled; dunning does not apply")
    if facts.status == "paid" or facts.status == "void":
        return _recover(policy, current, facts)
    if facts.status == "open" and facts.collection_method == "send_invoice":
        return _overdue(policy, current, facts)
    if facts.status != "open" or facts.attempt_count <= 0:
        return Decision(current, note=f"invoice {facts.invoice_id} is {facts.status} with "
                                      f"{facts.attempt_count} attempt(s); nothing to decide")
    if current.state == TRIAL_SUSPENDED:  # only a payment lifts it, as a suspension
        return Decision(replace(current, failures=facts.attempt_count),
                        note="stays trial_suspended until the invoice is paid")
    if facts.trial_ended_at is not None and policy.rank(current.state) == 0:
        return _trial_ended(policy, current, facts)
    return _failed(policy, current, facts)


def decide_manual(policy: DunningPolicy, current: DunningState, failure_count: int,
                  now: datetime) -> Decision:
    """The operator's trigger: exactly the step for `failure_count` (0 restores)."""
    if failure_count < 0:
        raise ValueError("failure_count must be 0 or more")
    if failure_count == 0:
        return _recover(policy, current, InvoiceFacts("manual", "paid", 0, now), cause="manual")
    step = policy.step_for(failure_count)
    target = step.name if step else GOOD_STANDING
    new = DunningState(target, failure_count, "manual")
    if target == current.state:
        return Decision(new, note=f"already {target}")
    detail = f"operator applied the step for {failure_count} failed payment(s)"
    notices = (NoticeDue(step.notice, target, _step_facts(policy, step, failure_count, None)),) \
        if step and step.notice else ()
    return Decision(new, Transition(current.state, target, target if step else "manual",
                                    detail), notices, detail)


def _recover(policy: DunningPolicy, current: DunningState, facts: InvoiceFacts,
             cause: str | None = None) -> Decision:
    new = DunningState(GOOD_STANDING, 0, None)
    if not policy.is_dunning(current.state):
        return Decision(new if current.state == GOOD_STANDING else current,
                        note=f"invoice {facts.invoice_id} is {facts.status}")
    voided = facts.status == "void"
    step = cause or ("void" if voided else "recovery")
    detail = (f"invoice {facts.invoice_id} voided; access restored" if voided
              else f"invoice {facts.invoice_id} paid; access restored" if cause is None
              else "operator restored the tenant")
    # A receipt says money came: not for a $0 invoice (a trial's) nor an operator's reset.
    received = cause is None and (voided or facts.amount_paid != 0)
    notices: tuple[NoticeDue, ...] = ()
    if policy.recovery_notice and received and (not voided or policy.notify_on_void):
        notices = (NoticeDue(policy.recovery_notice, "recovered",
                             {"attempt_count": current.failures}),)
    return Decision(new, Transition(current.state, GOOD_STANDING, step, detail), notices, detail)


def _failed(policy: DunningPolicy, current: DunningState, facts: InvoiceFacts) -> Decision:
    count = facts.attempt_count
    step = policy.step_for(count)
    jumped = False
    if facts.decline_code in policy.hard_decline_codes and policy.decline_jump_to:
        jump = next((s for s in policy.steps if s.name == policy.decline_jump_to), None)
        if jump is not None and (step is None or policy.rank(jump.name) > policy.rank(step.name)):
            step, jumped = jump, True
    same_invoice = current.invoice_id == facts.invoice_id
    failures = max(count, current.failures) if same_invoice else count
    # Within an unpaid episode a step is never taken back (only a payment ends it).
    if policy.rank(current.state) > (policy.rank(step.name) if step else 0):
        return Decision(replace(current, failures=max(failures, current.failures)),
                        note=f"stays {current.state}: invoice {facts.invoice_id} after {count} "
                             "attempt(s) does not reach further")
    if step is None:
        return Decision(replace(current, failures=failures, invoice_id=facts.invoice_id),
                        note=f"{count} failed attempt(s) reach no step of the policy")
    new = DunningState(step.name, failures, facts.invoice_id)
    if step.name == current.state:
        return Decision(new, note=f"already {step.name} for {facts.invoice_id} "
                                  f"({count} attempt(s))")
    why = f" (decline code {facts.decline_code}: retrying cannot fix it)" if jumped else ""
    detail = f"invoice {facts.invoice_id} unpaid after {count} attempt(s){why}"
    notices = (NoticeDue(step.notice, step.name,
                         _step_facts(policy, step, count, facts.next_payment_attempt)),) \
        if step.notice else ()
    return Decision(new, Transition(current.state, step.name, step.name, detail), notices,
                    detail)


def days_past_due(due_date: datetime, now: datetime) -> int:
    """0 before the due date; 1 once it has passed, 2 a day later, and so on."""
    if now < due_date:
        return 0
    return (now - due_date) // timedelta(days=1) + 1


def overdue_step_ahead(policy: DunningPolicy, state: str, due_date: datetime,
                       now: datetime) -> OverdueStep | None:
    """The overdue step an emailed invoice due `due_date` has reached by `now` that a tenant
    in `state` has not entered yet, or None: then `decide` on that invoice changes nothing."""
    step = policy.overdue_step_for(days_past_due(due_date, now))
    if step is None or state == CANCELED or policy.rank(state) >= policy.rank(step.name):
        return None
    return step


def _overdue(policy: DunningPolicy, current: DunningState, facts: InvoiceFacts) -> Decision:
    """An emailed invoice: the overdue step for its days past due (never one back)."""
    days = days_past_due(facts.due_date, facts.now) if facts.due_date else 0
    step = policy.overdue_step_for(days)
    if step is None:
        return Decision(current, note=f"invoice {facts.invoice_id} is {days} day(s) past due; "
                                      "no overdue step yet")
    if policy.rank(current.state) >= policy.rank(step.name):
        return Decision(current, note=f"stays {current.state}: invoice {facts.invoice_id} "
                                      f"{days} day(s) past due")
    new = DunningState(step.name, days, facts.invoice_id)
    detail = f"invoice {facts.invoice_id} unpaid {days} day(s) past its due date"
    following = next((s for s in policy.overdue_steps if s.days > step.days), None)
    assert facts.due_date is not None
    notice_facts: dict[str, Any] = {
        "attempt_count": 0, "days_past_due": days, "due_date": facts.due_date,
        "access": step.effects.access,
        "next_step": following.name if following else None,
        "next_step_at": facts.due_date + timedelta(days=following.days - 1)
        if following else None,
        "suspension_at": None,
    }
    notices = (NoticeDue(step.notice, step.name, notice_facts),) if step.notice else ()
    return Decision(new, Transition(current.state, step.name, step.name, detail), notices,
                    detail)


def _trial_ended(policy: DunningPolicy, current: DunningState,
                 facts: InvoiceFacts) -> Decision:
    assert facts.trial_ended_at is not None
    grace_ends = facts.trial_ended_at + timedelta(days=policy.trial.grace_days)
    target = TRIAL_SUSPENDED if facts.now >= grace_ends else TRIAL_GRACE
    new = DunningState(target, facts.attempt_count, facts.invoice_id)
    if target == current.state:
        return Decision(new, note=f"already {current.state}")
    if target == TRIAL_GRACE:
        detail = (f"trial ended {facts.trial_ended_at.isoformat()} without a payment method; "
                  f"grace until {grace_ends.isoformat()}")
        return Decision(new, Transition(current.state, target, "trial_grace", detail), (),
                        detail)
    detail = (f"trial ended {facts.trial_ended_at.isoformat()} and no payment came within "
              f"{policy.trial.grace_days} day(s)")
    notices = (NoticeDue(policy.trial.suspended_notice, target,
                         {"attempt_count": facts.attempt_count, "next_step": None,
                          "trial_end": facts.trial_ended_at}),) \
        if policy.trial.suspended_notice else ()
    return Decision(new, Transition(current.state, target, "trial_suspension", detail),
                    notices, detail)


def _step_facts(policy: DunningPolicy, step: Step, count: int,
                next_attempt: datetime | None) -> dict[str, Any]:
    """What the notice of `step` says about what comes next."""
    suspension = policy.suspension_step
    facts: dict[str, Any] = {"attempt_count": count, "next_step_at": next_attempt}
    if step.effects.suspended or suspension is None:
        facts.update(next_step=None, suspension_at=None)
        return facts
    facts["next_step"] = "suspension"
    facts["suspension_at"] = suspension_date(policy, count, next_attempt)
    return facts


def suspension_date(policy: DunningPolicy, count: int,
                    next_attempt: datetime | None) -> datetime | None:
    """When the attempt that suspends is due, from Stripe's next attempt and the schedule.

    Attempt k+1 (a retry) is due `retry_days[k-1]` days after the first failure, so the
    suspending attempt n is `retry_days[n-2] - retry_days[count-1]` days after the next one.
    None when Stripe plans no further attempt or the schedule does not reach that far.
    """
    suspension = policy.suspension_step
    if suspension is None or next_attempt is None or count < 1:
        return None
    if suspension.failures == count + 1:
        return next_attempt
    days = policy.retry_days
    if len(days) < max(count, suspension.failures - 1):
        return None
    return next_attempt + timedelta(days=days[suspension.failures - 2] - days[count - 1])


# --- loading ---------------------------------------------------------------------------------


def load_policy(path: Path | None = None) -> DunningPolicy:
    """Load `path`, or the `dunning.toml` shipped in the package when `path` is None."""
    if path is None:
        text = resources.files("meterbill").joinpath("dunning.toml").read_text(encoding="utf-8")
        source = "dunning.toml (packaged)"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigurationError(f"Cannot read DUNNING_POLICY_FILE {path}: "
                                     f"{error.strerror}") from None
        source = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigurationError(f"{source} is not valid TOML: {error}") from None
    return parse_policy(data, source=source)


_TOP = {"steps", "retry_schedule", "decline_codes", "recovery", "cancellation", "trial",
        "overdue"}


def parse_policy(data: Mapping[str, Any], *, source: str = "dunning policy") -> DunningPolicy:
    """Build a policy from parsed TOML; errors name the file, the field and what to write."""
    _only(data, _TOP, source)
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise ConfigurationError(f"{source}: no [[steps]] found; a policy needs at least one")
    steps = tuple(_parse_step(raw, f"{source}: steps[{i}]") for i, raw in enumerate(raw_steps))
    for before, after in zip(steps, steps[1:], strict=False):
        if after.failures <= before.failures:
            raise ConfigurationError(
                f"{source}: steps must have increasing `failures`; {after.name!r} "
                f"({after.failures}) comes after {before.name!r} ({before.failures})")
    names = [s.name for s in steps]
    if len(set(names)) != len(names):
        raise ConfigurationError(f"{source}: step names must be unique, got {names}")
    schedule = _table(data, "retry_schedule", source)
    _only(schedule, {"days_after_first_failure"}, f"{source}: retry_schedule")
    days = schedule.get("days_after_first_failure", [3, 6, 7])
    if not isinstance(days, list) or not all(_whole(d) and d > 0 for d in days) or \
            days != sorted(days):
        raise ConfigurationError(f"{source}: retry_schedule.days_after_first_failure must be a "
                                 f"list of increasing whole days, e.g. [3, 6, 7]; got {days!r}")
    declines = _table(data, "decline_codes", source)
    _only(declines, {"jump_to", "codes"}, f"{source}: decline_codes")
    codes = declines.get("codes", [])
    if not isinstance(codes, list) or not all(
            isinstance(c, str) and _DECLINE_CODE.match(c) for c in codes):
        raise ConfigurationError(f"{source}: decline_codes.codes must be a list of Stripe "
                                 f"decline codes such as \"stolen_card\"; got {codes!r}")
    jump = declines.get("jump_to") or None
    if jump is not None and jump not in names:
        raise ConfigurationError(f"{source}: decline_codes.jump_to {jump!r} is not a step; "
                                 f"choose one of {names}")
    recovery = _table(data, "recovery", source)
    _only(recovery, {"notice", "notify_on_void"}, f"{source}: recovery")
    notify_on_void = recovery.get("notify_on_void", False)
    if not isinstance(notify_on_void, bool):
        raise ConfigurationError(f"{source}: recovery.notify_on_void must be true or false")
    cancellation = _table(data, "cancellation", source)
    _only(cancellation, {"notice"}, f"{source}: cancellation")
    overdue = _parse_overdue(_table(data, "overdue", source), names, f"{source}: overdue")
    return DunningPolicy(
        steps=steps,
        retry_days=tuple(days),
        hard_decline_codes=frozenset(codes),
        decline_jump_to=jump,
        recovery_notice=_notice(recovery, "payment_received", f"{source}: recovery"),
        notify_on_void=notify_on_void,
        cancellation_notice=_notice(cancellation, "subscription_canceled",
                                    f"{source}: cancellation"),
        trial=_parse_trial(_table(data, "trial", source), f"{source}: trial"),
        source=source,
        overdue_steps=overdue,
    )


def _parse_overdue(raw: Mapping[str, Any], taken: list[str],
                   where: str) -> tuple[OverdueStep, ...]:
    _only(raw, {"steps"}, where)
    raw_steps = raw.get("steps", [])
    if not isinstance(raw_steps, list):
        raise ConfigurationError(f"{where}: steps must be a list of [[overdue.steps]] tables")
    steps = []
    for i, entry in enumerate(raw_steps):
        here = f"{where}.steps[{i}]"
        if not isinstance(entry, Mapping):
            raise ConfigurationError(f"{here} must be a table")
        _only(entry, {"days", "name", "notice", "access", "rate_limit_multiplier"}, here)
        days = _at_least_one(entry, "days", here, "day 1: the due date has passed")
        steps.append(OverdueStep(days, _step_name(entry, here), _notice(entry, None, here),
                                 _parse_effects(entry, here)))
    for before, after in zip(steps, steps[1:], strict=False):
        if after.days <= before.days:
            raise ConfigurationError(
                f"{where}: steps must have increasing `days`; {after.name!r} ({after.days}) "
                f"comes after {before.name!r} ({before.days})")
    names = [s.name for s in steps]
    clash = sorted(set(names) & set(taken)) or sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise ConfigurationError(f"{where}: step names must be unique across [[steps]] and "
                                 f"[[overdue.steps]]; {clash[0]!r} is used twice")
    return tuple(steps)


def _parse_step(raw: Any, where: str) -> Step:
    if not isinstance(raw, Mapping):
        raise ConfigurationError(f"{where} must be a table")
    _only(raw, {"failures", "name", "notice", "access", "rate_limit_multiplier"}, where)
    failures = _at_least_one(raw, "failures", where,
                             "the failed attempt from which the step applies")
    return Step(failures, _step_name(raw, where), _notice(raw, None, where),
                _parse_effects(raw, where))


def _at_least_one(raw: Mapping[str, Any], key: str, where: str, meaning: str) -> int:
    value = raw.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigurationError(f"{where}.{key} must be a whole number >= 1 ({meaning}); "
                                 f"got {value!r}")
    return value


def _step_name(raw: Mapping[str, Any], where: str) -> str:
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name) or name in RESERVED_STATES:
        raise ConfigurationError(f"{where}.name must be lower-case letters, digits and _ and "
                                 f"not one of {sorted(RESERVED_STATES)}; got {name!r}")
    return name


def _parse_effects(raw: Mapping[str, Any], where: str, access_key: str = "access",
                   multiplier_key: str = "rate_limit_multiplier") -> Effects:
    access = raw.get(access_key, "full")
    if access not in ACCESS_LEVELS:
        raise ConfigurationError(f"{where}.{access_key} must be one of "
                                 f"{', '.join(ACCESS_LEVELS)}; got {access!r}")
    default = {"full": 1.0, "reduced": 0.5, "none": 0.0}[access]
    multiplier = raw.get(multiplier_key, default)
    if isinstance(multiplier, bool) or not isinstance(multiplier, int | float):
        raise ConfigurationError(f"{where}.{multiplier_key} must be a number; "
                                 f"got {multiplier!r}")
    multiplier = float(multiplier)
    valid = {"full": multiplier == 1.0, "reduced": 0.0 < multiplier < 1.0,
             "none": multiplier == 0.0}[access]
    if not valid:
        raise ConfigurationError(
            f"{where}.{multiplier_key} {multiplier} does not fit access {access!r}: full is "
            "1.0, reduced is between 0 and 1 (e.g. 0.5), none is 0")
    return Effects(access, multiplier)


def _parse_trial(raw: Mapping[str, Any], where: str) -> TrialRule:
    _only(raw, {"grace_days", "grace_access", "grace_rate_limit_multiplier",
                "suspended_notice", "reminder_notice"}, where)
    grace_days = raw.get("grace_days", 3)
    if not _whole(grace_days) or grace_days < 0:
        raise ConfigurationError(f"{where}.grace_days must be a whole number >= 0; "
                                 f"got {grace_days!r}")
    return TrialRule(
        grace_days=grace_days,
        grace=_parse_effects(raw, where, "grace_access", "grace_rate_limit_multiplier"),
        suspended_notice=_notice(raw, "trial_ended_suspended", where, "suspended_notice"),
        reminder_notice=_notice(raw, "trial_ending_no_payment_method", where,
                                "reminder_notice"),
    )


def _notice(raw: Mapping[str, Any], default: str | None, where: str,
            key: str = "notice") -> str | None:
    value = raw.get(key, default)
    if value in (None, ""):
        return None
    if value not in KNOWN_NOTICES:
        raise ConfigurationError(f"{where}.{key} {value!r} is not a notice meterbill can send; "
                                 f"use \"\" for none or one of {sorted(KNOWN_NOTICES)}")
    return str(value)


def _table(data: Mapping[str, Any], key: str, source: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{source}: [{key}] must be a table")
    return value


def _only(raw: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigurationError(f"{where}: unknown field(s) {unknown}; allowed: "
                                 f"{sorted(allowed)}")


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
