"""The policy's [overdue] steps: emailed invoices by days past due, parsed and decided."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from meterbill.domain.dunning import (
    DunningState,
    InvoiceFacts,
    days_past_due,
    decide,
    load_policy,
    parse_policy,
)
from meterbill.domain.errors import ConfigurationError

DUE = datetime(2026, 3, 11, 9, tzinfo=UTC)
POLICY = load_policy()


def _facts(days_after_due: float, status: str = "open") -> InvoiceFacts:
    return InvoiceFacts("in_1", status, 0, DUE + timedelta(days=days_after_due),
                        collection_method="send_invoice", due_date=DUE, amount_paid=9900)


def test_days_past_due_counts_the_due_day_as_day_one() -> None:
    assert days_past_due(DUE, DUE - timedelta(seconds=1)) == 0
    assert days_past_due(DUE, DUE) == 1
    assert days_past_due(DUE, DUE + timedelta(days=14)) == 15


@pytest.mark.parametrize(("after", "state", "access"), [
    (-1, "good_standing", None), (0.1, "overdue_reminder", "full"),
    (14, "overdue_warning", "full"), (29, "overdue_reduced", "reduced"),
    (44.5, "overdue_suspended", "none"),
])
def test_the_packaged_steps(after: float, state: str, access: str | None) -> None:
    decision = decide(POLICY, DunningState(), _facts(after))
    assert decision.state.state == state
    if access is not None:
        assert decision.notices[0].kind == "invoice_overdue"
        assert decision.notices[0].facts["access"] == access


def test_never_a_step_back_and_paid_recovers() -> None:
    reduced = decide(POLICY, DunningState(), _facts(29)).state
    assert decide(POLICY, reduced, _facts(1)).state == reduced
    recovered = decide(POLICY, reduced, _facts(30, "paid"))
    assert recovered.state.state == "good_standing"
    assert [n.kind for n in recovered.notices] == ["payment_received"]


def test_a_charged_invoice_ignores_the_overdue_steps() -> None:
    facts = InvoiceFacts("in_1", "open", 0, DUE + timedelta(days=40))
    assert decide(POLICY, DunningState(), facts).state.state == "good_standing"


@pytest.mark.parametrize(("steps", "field"), [
    ([{"days": 0, "name": "x"}], "days"),
    ([{"days": 5, "name": "a"}, {"days": 5, "name": "b"}], "increasing"),
    ([{"days": 1, "name": "reminder"}], "unique"),
    ([{"days": 1, "name": "x", "notice": "nope"}], "notice"),
])
def test_bad_overdue_steps_are_named(steps: list[dict[str, object]], field: str) -> None:
    data = {"steps": [{"failures": 1, "name": "reminder"}], "overdue": {"steps": steps}}
    with pytest.raises(ConfigurationError) as info:
        parse_policy(data)
    assert field in str(info.value)
