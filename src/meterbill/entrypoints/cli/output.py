"""How commands print: rich tables for people, one JSON document for scripts (`--json`).

With `--json` stdout holds exactly one JSON value (errors too, as the API's error envelope),
so `meterbill tenants list --json | jq` always parses; notes for people go to stderr.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

JsonFlag = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on stdout, for scripts.")
]


def console() -> Console:
    # Made per call so that CliRunner's captured stdout is the one written to.
    return Console(file=sys.stdout, soft_wrap=True)


def err_console() -> Console:
    return Console(file=sys.stderr, soft_wrap=True)


def panel_console() -> Console:
    """For boxed banners on stderr: wraps inside the box instead of cropping."""
    return Console(file=sys.stderr)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def note(message: str, as_json: bool = False) -> None:
    """A line for people: stdout normally, stderr under --json (stdout stays pure JSON)."""
    (err_console() if as_json else console()).print(message, highlight=False)


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    result = Table(title=title, title_justify="left", show_lines=False)
    for column in columns:
        result.add_column(column, overflow="fold")
    for row in rows:
        result.add_row(*(_cell(value) for value in row))
    return result


def key_values(title: str | None, data: dict[str, Any]) -> Table:
    """A two-column table of a flat (or shallowly nested) dict."""
    rows: list[tuple[str, Any]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            rows.extend((f"{key}.{k}", v) for k, v in value.items())
        else:
            rows.append((key, value))
    return table(title, ("field", "value"), rows)


def show(data: Any, as_json: bool, *tables: Table) -> None:
    """Print `data` as JSON, or the given tables for people."""
    if as_json:
        print_json(data)
        return
    out = console()
    for item in tables:
        out.print(item)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)
