"""Outgoing `tenant.access_changed` events to the SaaS, signed and retried.

With ACCESS_WEBHOOK_URL set, the SaaS learns of every change of a tenant's access (full,
reduced, none, or another rate-limit multiplier) when it commits, instead of polling
`GET /tenants/{id}/entitlement`. Each event is a row of the notification outbox (channel
`access_webhook`), recorded by the one writer of access (services/access/writer.py) in the
transaction that changes it, and posted by the notification sender, which retries with backoff
up to NOTIFICATION_MAX_ATTEMPTS; `meterbill notifications list` shows them.

The body is signed as Stripe signs its webhooks: header `Meterbill-Signature: t=<unix time>,
v1=<hex HMAC-SHA256 of "<t>.<body>" with ACCESS_WEBHOOK_SECRET>`, so stripe-python's
`WebhookSignature.verify_header(body, header, secret)` checks it. Deliveries may repeat (a
retry after a timeout) or cross: `id` names the event once, `occurred_at` orders the events of a
tenant, and the entitlement endpoint always has the current answer.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from ...adapters.db.models import Tenant
from ...adapters.db.notifications import NoticeRepository
from ...adapters.db.session import DbSession
from ...domain.access import AccessDecision

KIND = "tenant.access_changed"
CHANNEL = "access_webhook"
RECIPIENT = "ACCESS_WEBHOOK_URL"  # shown for the rows (the URL itself is a secret)


Level = tuple[str, float]  # (access, rate-limit multiplier)


def stored_access(tenant: Tenant) -> Level:
    """The access the tenant row holds now (what `tenant_access` last wrote)."""
    multiplier = float(tenant.rate_limit_multiplier or 0.0)
    if not tenant.api_access_enabled or multiplier <= 0.0:
        return ("none", 0.0)
    return ("reduced" if multiplier < 1.0 else "full", multiplier)


def access_event(tenant: Tenant, before: Level, after: AccessDecision,
                 occurred_at: datetime, event_id: str) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": KIND,
        "created": int(occurred_at.timestamp()),
        "occurred_at": occurred_at.isoformat(),
        "data": {
            "tenant_id": tenant.tenant_id,
            "access": after.access,
            "rate_limit_multiplier": after.rate_limit_multiplier,
            "reason": after.reason,
            "dunning_state": after.dunning_state,
            "billing_status": after.billing_status,
            "previous": {"access": before[0], "rate_limit_multiplier": before[1]},
        },
    }


def record_access_change(session: DbSession, tenant: Tenant, before: Level,
                         after: AccessDecision, occurred_at: datetime) -> None:
    """One outbox row for the change, in the caller's transaction."""
    event_id = f"acc_{uuid.uuid4().hex}"
    body = json.dumps(access_event(tenant, before, after, occurred_at, event_id),
                      separators=(",", ":"))
    NoticeRepository(session).insert(
        dedupe_key=f"{KIND}:{event_id}", kind=KIND, tenant_id=tenant.tenant_id,
        detail=(f"access {before[0]} (x{before[1]:g}) -> {after.access} "
                f"(x{after.rate_limit_multiplier:g}): {after.reason}"),
        channel=CHANNEL, recipient=RECIPIENT, subject=KIND, body_text=body,
        status="pending")
