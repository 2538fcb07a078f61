"""Fixtures for meterbill tests: settings on a fresh database, and a wired `container`.

The database is parametrized: SQLite (a temp file) always, and PostgreSQL too when
METERBILL_TEST_DATABASE_URL is set, each test in a schema of its own that is dropped afterwards.
The container talks to the in-process Stripe sandbox of the `sandbox` fixture (tests/conftest.py).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import stripe
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from meterbill.bootstrap import Container, build
from meterbill.config import Settings
from meterbill.entrypoints.api import create_app
from stripe_sandbox import Sandbox, SandboxHTTPClient

from .smtp import smtp_server  # noqa: F401  (a fixture for every test under tests/meterbill)

PG_ENV = "METERBILL_TEST_DATABASE_URL"
API_TOKEN = "test-token-0123456789"


def _database_params() -> list[object]:
    params: list[object] = [pytest.param("sqlite", id="sqlite")]
    if os.environ.get(PG_ENV):
        params.append(pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres))
    return params


@pytest.fixture(params=_database_params())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database: a temp SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'meterbill.db'}"
        return
    base = make_url(os.environ[PG_ENV])
    schema = f"t_{secrets.token_hex(6)}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = base.update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def make_settings(database_url: str, **overrides: object) -> Settings:
    """Settings independent of the environment and any .env file: sandbox mode, no retries."""
    values: dict[str, object] = {
        "stripe_secret_key": None,
        "stripe_publishable_key": None,
        "stripe_webhook_secret": None,
        "stripe_api_base": None,
        "stripe_max_network_retries": 0,
        "database_url": database_url,
        "meterbill_api_token": API_TOKEN,
        "environment": "development",
        "plans_file": None,
        "require_payment_method": True,
        "downgrade_at_period_end": True,
        "upgrade_proration": "always_invoice",
        "default_trial_days": 14,
        "sandbox_test_clocks": False,  # tests that travel in time put their customers on clocks
        "log_level": "INFO",
        "usage_store_url": "duckdb:///:memory:",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


def make_container(settings: Settings, sandbox: Sandbox, *, sync: bool = True) -> Container:
    container = build(settings, stripe_http_client=SandboxHTTPClient(sandbox))
    container.upgrade_db()
    if sync:
        container.catalog_sync.sync()
    return container


@pytest.fixture
def container(settings: Settings, sandbox: Sandbox) -> Iterator[Container]:
    """meterbill wired to the test's sandbox, migrated, with the catalog synced."""
    built = make_container(settings, sandbox)
    try:
        yield built
    finally:
        built.close()


class _DownHTTPClient(stripe.HTTPClient):
    """An http_client for which Stripe is unreachable: every request fails to connect."""

    name = "stripe_down"

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def request(self, method, url, headers, post_data=None, *, _usage=None):  # type: ignore[no-untyped-def]
        self.calls += 1
        raise stripe.APIConnectionError("Connection refused (test: Stripe is down)",
                                        should_retry=True)

    def request_stream(self, method, url, headers, post_data=None, *, _usage=None):  # type: ignore[no-untyped-def]
        return self.request(method, url, headers, post_data)

    def close(self) -> None:
        pass


@pytest.fixture
def stripe_down(container: Container) -> Iterator[tuple[Container, _DownHTTPClient]]:
    """The same database as `container` (migrated, catalog synced), but Stripe unreachable."""
    down = _DownHTTPClient()
    broken = build(container.settings, stripe_http_client=down)
    try:
        yield broken, down
    finally:
        broken.close()


@pytest.fixture
def stripe_client(sandbox: Sandbox) -> stripe.StripeClient:
    """A client on the test's sandbox, for looking at what meterbill did in Stripe."""
    return stripe.StripeClient("sk_test_sandbox", http_client=SandboxHTTPClient(sandbox),
                               max_network_retries=0)


@pytest.fixture
def api(container: Container) -> Iterator[TestClient]:
    """The API over `container`, as a context manager: one event loop, which threads may share."""
    with TestClient(create_app(container)) as client:
        yield client


@pytest.fixture
def auth(container: Container) -> dict[str, str]:
    token = container.settings.meterbill_api_token
    assert token is not None
    return {"Authorization": f"Bearer {token.get_secret_value()}"}


def spy_dunning_amounts(container: Container,
                        monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, str]]:
    """What the container's dunning service is asked with from now on: (amount in cents,
    currency) per manual call, the amount checked to be an integer."""
    seen: list[tuple[int, str]] = []
    service = container.dunning
    original = service.process_manual

    def spy(tenant_id: str, failure_count: int, invoice_amount: int, currency: str = "usd",
            invoice_id: str | None = None) -> object:
        assert type(invoice_amount) is int
        seen.append((invoice_amount, currency))
        return original(tenant_id, failure_count, invoice_amount, currency, invoice_id)

    monkeypatch.setattr(service, "process_manual", spy)
    return seen
