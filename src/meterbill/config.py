"""One Settings object, read from the environment and `.env` (names as in `.env.example`).

Without `STRIPE_SECRET_KEY` meterbill runs in sandbox mode against the in-process Stripe
sandbox; `bootstrap.build` picks the adapters from these values and nothing else reads them.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

Mode = Literal["sandbox", "test", "live"]

# Where links in emails point when PUBLIC_BASE_URL is unset and no `meterbill serve` says where
# it listens (`serve` itself and commands run beside it use the server's own address).
DEFAULT_PUBLIC_BASE_URL = "http://127.0.0.1:8000"

# Settings whose values never appear in logs or `check-config` output.
_SECRET_FIELDS = {"stripe_secret_key", "stripe_webhook_secret", "meterbill_api_token",
                  "link_signing_secret", "alert_webhook_url", "access_webhook_url",
                  "access_webhook_secret", "console_admin_users"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    stripe_secret_key: SecretStr | None = None
    stripe_publishable_key: str | None = None
    stripe_webhook_secret: SecretStr | None = None
    stripe_api_base: str | None = None
    stripe_max_network_retries: int = 2
    # How long one Stripe HTTP request may take, by path (stripe-python's client timeout; each
    # retry waits as long again): API requests and commands, webhook handlers (short: the
    # event is retried later), the usage sync (may wait longer).
    stripe_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    stripe_webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=600)
    stripe_usage_sync_timeout_seconds: float = Field(default=60.0, gt=0, le=600)
    database_url: str = "sqlite:///var/meterbill.db"
    # With a Stripe key, `serve` refuses a database whose schema is behind unless this is set;
    # sandbox mode always migrates.
    auto_migrate: bool = False
    # PostgreSQL time bounds (adapters/db/session.py: DatabaseTimeouts). Connecting; one
    # statement (0 = none); TCP keepalives (idle, interval, probes; a connection whose sent
    # data goes unacknowledged as long is dropped too); waiting for a pooled connection.
    database_connect_timeout_seconds: int = Field(default=5, ge=2, le=300)
    database_statement_timeout_seconds: float = Field(default=30.0, ge=0, le=86400)
    database_keepalives_idle_seconds: int = Field(default=30, ge=1, le=3600)
    database_keepalives_interval_seconds: int = Field(default=10, ge=1, le=600)
    database_keepalives_count: int = Field(default=3, ge=1, le=30)
    database_pool_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    # SQLite: how long a writer waits for another's lock before "database is locked".
    database_busy_timeout_seconds: float = Field(default=30.0, ge=0, le=600)
    meterbill_api_token: SecretStr | None = None
    environment: Literal["development", "production"] = "development"
    plans_file: Path | None = None
    require_payment_method: bool = True
    downgrade_at_period_end: bool = True
    upgrade_proration: Literal["always_invoice", "create_prorations"] = "always_invoice"
    default_trial_days: int = 14
    # Sandbox mode: each new customer sits on a test clock of its own, which `meterbill sandbox
    # advance` moves (services/sandbox/clock.py); timeline and usage days follow that clock.
    sandbox_test_clocks: bool = True
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"  # json: one object per line, with request_id
    # Webhook processing (see services/webhooks/options.py for what each one governs).
    task_runner: Literal["inline", "celery"] = "inline"
    celery_broker_url: str | None = None
    webhook_max_body_bytes: int = 512 * 1024
    webhook_tolerance_seconds: int = 300
    webhook_rate_limit_per_minute: int = 1200
    webhook_max_attempts: int = Field(default=8, ge=1)
    webhook_retry_base_seconds: float = Field(default=30.0, gt=0)
    webhook_unknown_customer_hours: float = Field(default=1.0, ge=0)
    webhook_lease_seconds: float = Field(default=300.0, gt=0)
    webhook_sweep_after_seconds: float = Field(default=60.0, ge=0)
    webhook_sweep_interval_seconds: float = Field(default=30.0, gt=0)
    webhook_workers: int = 4
    # How long a delivery waits for its event to be committed to the inbox before the endpoint
    # answers 503 (Stripe retries); well under Stripe's own delivery timeout.
    webhook_store_timeout_seconds: float = Field(default=5.0, gt=0, le=15)
    # Usage store (see adapters/usage/__init__.py for the URL forms).
    usage_store_url: str = "duckdb:///var/usage.duckdb"
    # ClickHouse only: an existing events table to read as well (the seeds' `usage_events`).
    usage_source_table: str | None = None
    usage_source_tenant_column: str = "tenant_id"
    usage_source_timestamp_column: str = "timestamp"
    usage_source_event_id_column: str = "query_id"
    usage_source_tokens_column: str | None = "tokens_used"
    # Usage sync to Stripe's meters (docs/usage-sync.md).
    usage_sync_concurrency: int = Field(default=8, ge=1)  # tenants synced in parallel
    usage_sync_requests_per_second: float = Field(default=20.0, ge=0)  # 0 = no pacing
    usage_sync_max_attempts: int = Field(default=6, ge=1)  # tries per call on 429
    usage_sync_backoff_seconds: float = Field(default=0.5, ge=0)  # first 429 backoff
    usage_sync_backoff_max_seconds: float = Field(default=30.0, ge=0)
    usage_sync_interval_seconds: float = Field(default=86400.0, ge=0)  # 0 = no schedule
    usage_sync_first_run_seconds: float = Field(default=60.0, ge=0)  # after `serve` starts
    # The `overdue-invoices` job: later overdue steps of emailed invoices (0 = no schedule).
    overdue_check_interval_seconds: float = Field(default=86400.0, ge=0)
    overdue_check_first_run_seconds: float = Field(default=120.0, ge=0)  # after `serve` starts
    # Operations (docs/operations.md): subscription reconciliation daily at this UTC time
    # ("" = no schedule), and the webhook catch-up from Stripe's event list (0 = no schedule):
    # each run looks back `webhook_catch_up_hours`, the daily one `..._daily_days`.
    reconcile_daily_at: str = "02:00"
    reconcile_requests_per_second: float = Field(default=25.0, ge=0)  # list calls; 0 = unpaced
    webhook_catch_up_interval_seconds: float = Field(default=3600.0, ge=0)
    webhook_catch_up_hours: float = Field(default=3.0, gt=0, le=720)
    webhook_catch_up_daily_days: float = Field(default=3.0, gt=0, le=30)
    # SLOs (the shipped slos.toml unless set) checked this often (0 = no schedule); /ready
    # counts Stripe as up for `ready_stripe_cache_seconds` after a good call.
    slo_file: Path | None = None
    slo_check_interval_seconds: float = Field(default=60.0, ge=0)
    ready_stripe_cache_seconds: float = Field(default=60.0, ge=0)
    # Notifications (docs/notifications.md). Without SMTP_URL emails stay `held` in the outbox.
    smtp_url: str | None = None  # smtp://user:pass@host:587?starttls=true, smtps://host:465
    email_from: str = "meterbill <billing@localhost>"
    admin_emails: str = ""  # comma-separated: who gets admin alerts
    alert_webhook_url: SecretStr | None = None  # Slack-compatible incoming webhook
    # tenant.access_changed events to the SaaS (services/notifications/access_webhooks.py),
    # signed with the secret; unset = none sent.
    access_webhook_url: SecretStr | None = None
    access_webhook_secret: SecretStr | None = None
    # Absolute links in emails; unset = where `meterbill serve` listens (`public_url`).
    public_base_url: str | None = None
    link_signing_secret: SecretStr | None = None  # signs portal links; default: from the token
    portal_link_days: int = 30
    portal_return_url: str | None = None
    # Admin console users besides the API token: name:pbkdf2_sha256$... (comma-separated).
    console_admin_users: SecretStr | None = None
    templates_dir: Path | None = None  # email template overrides, file by file
    notification_max_attempts: int = 8
    notification_send_interval_seconds: float = Field(default=30.0, gt=0)
    # Dunning (docs/dunning.md): the policy file (default: the packaged dunning.toml), and how
    # long the entitlement endpoint may reuse a tenant's usage total (0 = read it every time).
    dunning_policy_file: Path | None = None
    entitlement_usage_cache_seconds: float = Field(default=10.0, ge=0)
    # Invoice verification (docs/invoice-verification.md): every subscription draft checked
    # against meterbill's numbers; a difference above the tolerance holds it for review.
    invoice_verification: bool = True
    invoice_tolerance_cents: int = Field(default=0, ge=0)
    invoice_hold_first: bool = False  # hold every tenant's first renewal invoice
    invoice_hold_usage_multiple: Decimal = Field(default=Decimal(0), ge=0)  # 0 = off
    invoice_hold_amount_above_cents: int = Field(default=0, ge=0)  # 0 = off
    invoice_hold_proration: bool = False
    invoice_hold_credit_balance: bool = False
    invoice_review_remind_hours: float = Field(default=12.0, ge=0)  # 0 = no reminders
    invoice_review_interval_seconds: float = Field(default=3600.0, ge=0)  # the reminder job

    @field_validator("stripe_secret_key", "stripe_webhook_secret", "meterbill_api_token",
                     "link_signing_secret", "alert_webhook_url", "access_webhook_url",
                     "access_webhook_secret", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # `STRIPE_SECRET_KEY=` in a .env file means "not set", not "the empty key".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("stripe_api_base", "stripe_publishable_key", "plans_file",
                     "usage_source_table", "usage_source_tokens_column", "smtp_url",
                     "portal_return_url", "templates_dir", "dunning_policy_file",
                     "public_base_url", "slo_file", mode="before")
    @classmethod
    def _blank_str_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("default_trial_days", "stripe_max_network_retries", "portal_link_days",
                     "notification_max_attempts")
    @classmethod
    def _not_negative(cls, value: int) -> int:
        if value < 0:
            raise ValueError("must be 0 or more")
        return value

    @model_validator(mode="after")
    def _access_webhook_is_signed(self) -> Settings:
        if self.access_webhook_url is not None and self.access_webhook_secret is None:
            raise ValueError("ACCESS_WEBHOOK_URL is set but ACCESS_WEBHOOK_SECRET is not: set "
                             "a secret (e.g. 32 random bytes in hex) so the SaaS can verify "
                             "the events")
        return self

    @property
    def mode(self) -> Mode:
        """`sandbox` without a key, `live` for an `sk_live_`/`rk_live_` key, else `test`."""
        if self.stripe_secret_key is None:
            return "sandbox"
        key = self.stripe_secret_key.get_secret_value()
        return "live" if key.startswith(("sk_live_", "rk_live_")) else "test"

    @property
    def public_url(self) -> str:
        """The base of absolute links: PUBLIC_BASE_URL, else the default, without a final /."""
        return (self.public_base_url or DEFAULT_PUBLIC_BASE_URL).rstrip("/")

    def state_file(self, suffix: str) -> Path:
        """A file of this set-up's local state (sandbox data, secrets, the running server).

        Beside a SQLite database file (`var/meterbill.db` → `var/meterbill{suffix}`), so each
        database has its own; `var/meterbill{suffix}` (relative to the working directory) for
        any other database.
        """
        try:
            url = make_url(self.database_url)
        except Exception:
            url = None
        if url is not None and url.get_backend_name() == "sqlite":
            database = url.database or ""
            if database and database != ":memory:" and not database.startswith("file:"):
                path = Path(database)
                return path.with_name(path.stem + suffix)
        return Path("var") / f"meterbill{suffix}"

    @property
    def admin_email_list(self) -> list[str]:
        return [address.strip() for address in self.admin_emails.split(",") if address.strip()]

    def usage_source(self) -> dict[str, str | None] | None:
        """The existing ClickHouse events table to read, as `SourceTable` fields, or None."""
        if self.usage_source_table is None:
            return None
        return {
            "table": self.usage_source_table,
            "tenant_id": self.usage_source_tenant_column,
            "occurred_at": self.usage_source_timestamp_column,
            "event_id": self.usage_source_event_id_column,
            "tokens": self.usage_source_tokens_column,
        }

    def describe(self) -> list[tuple[str, str]]:
        """Every setting as (ENV_NAME, value) with secrets and database passwords redacted."""
        rows: list[tuple[str, str]] = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name in _SECRET_FIELDS:
                shown = redact(value.get_secret_value()) if value is not None else "(not set)"
            elif name in ("database_url", "celery_broker_url", "usage_store_url",
                          "smtp_url") and value is not None:
                shown = redact_url(value)
            elif value is None:
                shown = "(not set)"
            else:
                shown = str(value)
            rows.append((name.upper(), shown))
        return rows


def redact(secret: str) -> str:
    """Keep a Stripe key's prefix (`sk_test_`) and last four characters, hide the rest."""
    if len(secret) <= 12:
        return "*" * len(secret)
    prefix = ""
    for candidate in ("sk_test_", "sk_live_", "rk_test_", "rk_live_", "whsec_"):
        if secret.startswith(candidate):
            prefix = candidate
    return prefix + "*" * 8 + secret[-4:]


def redact_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy understands: show nothing that could be secret
        return "(unparseable URL)"
