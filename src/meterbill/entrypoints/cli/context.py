"""What every command shares: how it gets its settings and container, and how it fails.

`CliContext` travels as Click's `ctx.obj`; `main()` makes the default one and tests pass their
own (`CliRunner().invoke(app, args, obj=CliContext(...))`), so there is no module-level state.

In sandbox mode a command that needs Stripe runs on the lasting sandbox of `sandbox_state`: the
running `meterbill serve`'s, or the in-process one loaded from (and saved to) its data file, so
that what one command creates in the sandbox is there for the next.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from sqlalchemy.exc import SQLAlchemyError

from meterbill.bootstrap import Container, build
from meterbill.config import Settings
from meterbill.domain.errors import MeterbillError

from .output import err_console, print_json
from .sandbox_state import (
    SandboxLock,
    acquire_or_find_server,
    data_file,
    uses_in_process_sandbox,
)

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

    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = self.settings_factory()
        return self._settings

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
            yield container


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
