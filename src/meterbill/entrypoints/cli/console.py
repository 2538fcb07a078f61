"""`meterbill console hash-password`: a CONSOLE_ADMIN_USERS entry for the admin console."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from meterbill.domain.passwords import hash_password

console_app = typer.Typer(help="The admin console at /admin.", no_args_is_help=True)

MIN_LENGTH = 12


@console_app.command("hash-password")
def hash_password_command(
    user: Annotated[str, typer.Argument(help="The login name.")],
    stdin: Annotated[bool, typer.Option("--stdin", help="Read the password from stdin "
                                        "(for scripts) instead of asking twice.")] = False,
) -> None:
    """Print `user:hash` for CONSOLE_ADMIN_USERS (comma-separate several users)."""
    if not user or any(c in user for c in ":,") or user != user.strip():
        raise typer.BadParameter("a user name without ':', ',' or surrounding spaces",
                                 param_hint="USER")
    if stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < MIN_LENGTH:
        typer.echo(f"Error: the password must be at least {MIN_LENGTH} characters.", err=True)
        raise typer.Exit(2)
    typer.echo(f"{user}:{hash_password(password)}")
