"""What every command shares: how it gets its settings and container, and how it fails.

`CliContext` travels as Click's `ctx.obj`; `main()` makes the default one and tests pass their
own (`CliRunner().invoke(app, args, obj=CliContext(...))`), so there is no module-level state.

In sandbox mode a command that needs Stripe runs on the lasting sandbox of `sandbox_state`: the
running `meterbill serve`'s, or the in-process one loaded from (and saved to) its data file, so
that what one command creates in the sandbox is there for the next.

While a `meterbill serve` runs on the same database (`server_record`), commands link to it
(PUBLIC_BASE_URL unset = the server's address) and, when it holds the DuckDB usage store, ask
it for usage through its API (`usage_server`, `remote`) instead of opening the file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from sqlalchemy.exc import SQLAlchemyError

from meterbill.bootstrap import Container, build
from meterbill.config import Settings
from meterbill.domain.errors import MeterbillError
from meterbill.entrypoints.api.auth import MissingApiToken, resolve_api_token

from .output import err_console, print_json
from .remote import ServerClient
from .sandbox_state import (
    SandboxLock,
    acquire_or_find_server,
    data_file,
    uses_in_process_sandbox,
)
from .server_record import ServerRecord, record_file

DEFAULT_SANDBOX_PORT = 12111


class CliFailure(Exception):
    """A command failed in a way the user can fix; `exit_code` 2 means set-up, 1 operation."""

    def __init__(self, code: str, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.exit_code = exit_code


def _build(settings: Settings) -> Container:
    return build(settings)


@dataclass
class CliContext:
    settings_factory: Callable[[], Settings] = Settings
    container_factory: Callable[[Settings], Container] = _build
    # Tests hand in a container they own; the CLI then must not close it.
    close_container: bool = True
    # Keep an in-process sandbox in its data file (off when the factory brings its own Stripe).
    lasting_sandbox: bool = True
    _settings: Settings | None = field(default=None, init=False, repr=False)
    # The running server's record, looked up once per command (False: none runs).
    _server: dict[str, Any] | bool | None = field(default=None, init=False, repr=False)

    def settings(self) -> Settings:
        if self._settings is None:
            settings = self.settings_factory()
            if settings.public_base_url is None:
                # Links made by this command point where the running server listens.
                server = self.server_info(settings)
                if server is not None:
                    settings = settings.model_copy(update={"public_base_url": server["api"]})
            self._settings = settings
        return self._settings

    def serving(self, api_url: str) -> Settings:
        """`meterbill serve`'s settings: links follow its address unless PUBLIC_BASE_URL is
        set (it must not take another server's address for its own)."""
        settings = self.settings_factory()
        if settings.public_base_url is None:
            settings = settings.model_copy(update={"public_base_url": api_url})
        self._settings, self._server = settings, False
        return settings

    def server_info(self, settings: Settings) -> dict[str, Any] | None:
        """The record of the `meterbill serve` running on this database, or None."""
        if self._server is None:
            self._server = ServerRecord(record_file(settings)).running() or False
        return self._server or None

    @contextlib.contextmanager
    def usage_server(self, *, announce: bool = True) -> Iterator[ServerClient | None]:
        """A client of the running server when it holds the usage store (a DuckDB file,
        which admits one process); None when this command opens the store itself."""
        if not holds_usage_store(self.settings()):
            yield None
            return
        with self.running_server(announce="it holds the usage store" if announce else None
                                 ) as client:
            yield client

    @contextlib.contextmanager
    def running_server(self, *, announce: str | None) -> Iterator[ServerClient | None]:
        """A client of the `meterbill serve` running on this database, or None."""
        client = self._server_client()
        if client is None:
            yield None
            return
        if announce:
            err_console().print(f"Asking the running `meterbill serve` at {client.url} "
                                f"({announce}).", highlight=False)
        try:
            yield client
        finally:
            client.close()

    def _server_client(self) -> ServerClient | None:
        settings = self.settings()
        info = self.server_info(settings)
        if info is None:
            return None
        try:
            token, _ = resolve_api_token(settings)
        except MissingApiToken:
            raise CliFailure("missing_api_token", (
                f"`meterbill serve` runs at {info['api']} and holds what this command needs, "
                "so it asks the server, with an API token. Fix: set METERBILL_API_TOKEN to the "
                "server's token."), exit_code=2) from None
        return ServerClient(ServerRecord(record_file(settings)), str(info["api"]), token)

    @contextlib.contextmanager
    def container(self, *, needs_stripe: bool) -> Iterator[Container]:
        """The container for one command; with `needs_stripe`, on the lasting sandbox."""
        settings = self.settings()
        with contextlib.ExitStack() as stack:
            lock: SandboxLock | None = None
            if needs_stripe and self.lasting_sandbox and uses_in_process_sandbox(settings):
                lock = SandboxLock(data_file(settings))
                url = lock_or_server(lock)
                if url is not None:
                    err_console().print(f"Using the Stripe sandbox of the running `meterbill "
                                        f"serve` at {url}.", highlight=False)
                    settings = settings.model_copy(update={"stripe_api_base": url})
                    lock = None
                else:
                    stack.callback(lock.release)
            container = self.container_factory(settings)
            if self.close_container:
                stack.callback(container.close)
            if lock is not None and container.sandbox is not None:
                stack.enter_context(keep_sandbox(container.sandbox, data_file(settings), 0))
                _link_where_served(container.sandbox, settings)
            if holds_usage_store(settings) and self.server_info(settings) is not None:
                # A webhook replayed here may flush usage: the server holding the store does.
                flush = _ServerFlush(self)
                stack.callback(flush.close)
                container.remote_usage_flush = flush
            yield container


def holds_usage_store(settings: Settings) -> bool:
    """Whether a running server keeps others out of the usage store: a DuckDB file does."""
    url = settings.usage_store_url.strip()
    return url.lower().startswith("duckdb://") and not url.endswith(":memory:")


class _ServerFlush:
    """`UsageFlushPort` through the running server, connected on the first flush."""

    def __init__(self, cli: CliContext) -> None:
        self.cli = cli
        self.client: ServerClient | None = None

    def flush(self, customer_id: str, period_end: datetime) -> None:
        if self.client is None:
            self.client = self.cli._server_client()
        if self.client is None:
            raise CliFailure("server_stopped", "The meterbill server stopped during this "
                             "command; run it again.")
        self.client.flush(customer_id, period_end)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()


def _link_where_served(sandbox: Any, settings: Settings) -> None:
    """Invoice links made by this in-process sandbox point where `serve` will serve them:
    the sandbox port the last server used, which the next one takes again."""
    url = ServerRecord(record_file(settings)).last().get("sandbox_url")
    if isinstance(url, str) and url:
        sandbox.set_public_url(url)


def lock_or_server(lock: SandboxLock) -> str | None:
    try:
        return acquire_or_find_server(lock)
    except TimeoutError:
        raise CliFailure("sandbox_busy", f"Another meterbill command holds {lock.path}. Fix: "
                         "wait for it to finish, then run this command again.",
                         exit_code=2) from None


@contextlib.contextmanager
def keep_sandbox(sandbox: Any, path: Path, debounce_seconds: float) -> Iterator[None]:
    """Load `path` into `sandbox`, keep it saved while in use, save the rest at the end."""
    from stripe_sandbox.persistence import PersistenceError, attach

    try:
        keeper = attach(sandbox, path, debounce_seconds, at_exit=False)
    except PersistenceError as error:
        raise CliFailure("sandbox_data", f"{error}\nFix: delete {path} (and the database, "
                         "whose rows point at the objects it held) for a clean start.",
                         exit_code=2) from None
    try:
        yield
    finally:
        keeper.close()


def cli_context(ctx: typer.Context) -> CliContext:
    root = ctx.find_root()
    if not isinstance(root.obj, CliContext):
        root.obj = CliContext()
    obj: CliContext = root.obj
    return obj


@contextlib.contextmanager
def reported(as_json: bool) -> Iterator[None]:
    """Turn the errors a user can act on into one message (or JSON envelope) and an exit code."""
    try:
        yield
    except CliFailure as failure:
        _fail(as_json, failure.code, failure.message, None, {}, failure.exit_code)
    except MeterbillError as error:
        _fail(as_json, error.code, error.message, error.field, dict(error.details), 1)
    except SQLAlchemyError as error:
        message = (
            f"Database error: {type(error).__name__}: {str(error).splitlines()[0]}\n"
            "Fix: check DATABASE_URL (`meterbill check-config`) and run `meterbill db upgrade`."
        )
        _fail(as_json, "database_error", message, None, {}, 1)


def _fail(as_json: bool, code: str, message: str, field_name: str | None,
          details: dict[str, object], exit_code: int) -> None:
    details = {k: v for k, v in details.items() if v is not None}
    if as_json:
        error: dict[str, object] = {"code": code, "message": message}
        if field_name:
            error["field"] = field_name
        error.update(details)
        print_json({"error": error})
    else:
        suffix = f" (field: {field_name})" if field_name else ""
        extra = "".join(f"\n  {k}: {v}" for k, v in details.items())
        text = escape(f"{message}{suffix}{extra}")
        err_console().print(f"[bold red]error:[/] {text}", highlight=False)
    raise typer.Exit(exit_code)
