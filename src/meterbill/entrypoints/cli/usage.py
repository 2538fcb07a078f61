"""`meterbill usage ...`: ingest usage files, sync usage to Stripe's meters, reconcile.

Commands are added by the modules that implement them; this module holds the group.
"""

from __future__ import annotations

import typer

usage_app = typer.Typer(help="Usage events: ingest files, sync to Stripe, reconcile.",
                        no_args_is_help=True)
