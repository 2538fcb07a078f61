"""Outgoing `tenant.access_changed` events to the SaaS, signed and retried.

With ACCESS_WEBHOOK_URL set, the SaaS learns of every change of a tenant's access (full,
reduced, none, or another rate-limit multiplier) when it commits, instead of polling
`GET /tenants/{id}/entitlement`. Each event is a row of the notification outbox (channel
`access_webhook`), recorded in the transaction that changed the access
(adapters/db/access_watch.py) and posted by the notification sender, which retries with backoff
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
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from ..adapters.db.models import Tenant, utcnow
from ..adapters.db.notifications import NoticeRepository
from ..domain.policies import AccessDecision

KIND = "tenant.access_changed"
CHANNEL = "access_webhook"
RECIPIENT = "ACCESS_WEBHOOK_URL"  # shown for the rows (the URL itself is a secret)


def access_event(tenant: Tenant, before: AccessDecision, after: AccessDecision,
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
            "billing_status": tenant.billing_status,
            "previous": {"access": before.access,
                         "rate_limit_multiplier": before.rate_limit_multiplier},
        },
    }


class AccessChangeRecorder:
    """The `record` callback of `watch_access_changes`: one outbox row per change."""

    def __init__(self, clock: Callable[[], datetime] = utcnow) -> None:
        self.clock = clock

    def __call__(self, session: Session, tenant: Tenant, before: AccessDecision,
                 after: AccessDecision) -> None:
        event_id = f"acc_{uuid.uuid4().hex}"
        body = json.dumps(access_event(tenant, before, after, self.clock(), event_id),
                          separators=(",", ":"))
        NoticeRepository(session).insert(
            dedupe_key=f"{KIND}:{event_id}", kind=KIND, tenant_id=tenant.tenant_id,
            detail=(f"access {before.access} (x{before.rate_limit_multiplier:g}) -> "
                    f"{after.access} (x{after.rate_limit_multiplier:g}): {after.reason}"),
            channel=CHANNEL, recipient=RECIPIENT, subject=KIND, body_text=body,
            status="pending")
