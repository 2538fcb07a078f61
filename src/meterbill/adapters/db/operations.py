"""What the operations views read: inbox age and outcomes, payments' first attempts, tenants by
access, the last good run of a job, usage drift; and the SLO states (`slo_states`: each
objective's state and since when, so a breach alerts once when it starts and once when it
ends)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from .inbox import WebhookEvent
from .job_runs import JobRun
from .models import Base, Tenant, UTCDateTime
from .usage_ledger import UsageDrift

_UNHANDLED = ("received", "processing", "failed")
_PAYMENTS = ("invoice.payment_succeeded", "invoice.payment_failed")


class SloState(Base):
    __tablename__ = "slo_states"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))  # ok or breach
    since: Mapped[datetime] = mapped_column(UTCDateTime())
    value: Mapped[str | None] = mapped_column(String(64))  # the value that decided it
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OperationsReads:
    def __init__(self, session: Session) -> None:
        self.session = session

    def inbox_outcomes(self, since: datetime) -> dict[str, int]:
        """Rows received since `since`, per status."""
        rows = self.session.execute(
            select(WebhookEvent.status, func.count()).where(WebhookEvent.received_at >= since)
            .group_by(WebhookEvent.status))
        return {status: int(count) for status, count in rows}

    def oldest_unhandled(self) -> datetime | None:
        return self.session.scalar(select(func.min(WebhookEvent.received_at))
                                   .where(WebhookEvent.status.in_(_UNHANDLED)))

    def first_attempts(self, since: datetime) -> tuple[int, int]:
        """(paid, made): invoices' first payment attempts whose events arrived since `since`."""
        paid = made = 0
        for kind, payload in self.session.execute(
                select(WebhookEvent.type, WebhookEvent.payload)
                .where(WebhookEvent.type.in_(_PAYMENTS), WebhookEvent.received_at >= since)):
            obj = json.loads(payload).get("data", {}).get("object", {})
            if obj.get("attempt_count") == 1:
                made += 1
                paid += kind == "invoice.payment_succeeded"
        return paid, made

    def invoice_failures(self, since: datetime) -> int:
        return int(self.session.scalar(
            select(func.count()).select_from(WebhookEvent)
            .where(WebhookEvent.received_at >= since,
                   (WebhookEvent.type == "invoice.finalization_failed")
                   | (WebhookEvent.type.like("invoice.%") & (WebhookEvent.status == "dead"))))
            or 0)

    def tenants_by_access(self) -> dict[str, int]:
        rows = self.session.execute(
            select(Tenant.api_access_enabled, Tenant.soft_suspended, func.count())
            .group_by(Tenant.api_access_enabled, Tenant.soft_suspended))
        found = {"full": 0, "reduced": 0, "none": 0}
        for enabled, reduced, count in rows:
            level = "none" if not enabled else "reduced" if reduced else "full"
            found[level] += int(count)
        return found

    def last_good_run(self, job: str) -> datetime | None:
        return self.session.scalar(select(func.max(JobRun.finished_at))
                                   .where(JobRun.name == job, JobRun.outcome == "ok"))

    def usage_drift(self, since: datetime) -> list[tuple[str, int]]:
        """(tenant, |ours - Stripe's|) of each tenant's and period's newest drift found since
        `since`."""
        newest: dict[tuple[str, str], tuple[int, int]] = {}
        for row_id, tenant, label, diff in self.session.execute(
                select(UsageDrift.id, UsageDrift.tenant_id, UsageDrift.period_label,
                       UsageDrift.diff).where(UsageDrift.found_at >= since)):
            key = (tenant, label)
            if key not in newest or newest[key][0] < row_id:
                newest[key] = (row_id, abs(int(diff)))
        return [(tenant, diff) for (tenant, _), (_, diff) in newest.items()]

    def plans(self, tenant_ids: Sequence[str]) -> dict[str, str | None]:
        return {t: p for t, p in self.session.execute(
            select(Tenant.tenant_id, Tenant.current_plan)
            .where(Tenant.tenant_id.in_(list(tenant_ids))))}

    # --- SLO states ----------------------------------------------------------------------------

    def slo_states(self) -> dict[str, SloState]:
        return {row.name: row for row in self.session.scalars(select(SloState))}

    def save_slo_state(self, row: SloState) -> None:
        self.session.merge(row)
