"""The layering rules of DESIGN.md, checked over the source with `ast`.

domain imports nothing from adapters, services or entrypoints; services never import
entrypoints, and reach the database only through repositories (no sqlalchemy); ports import
only domain, each other and the standard library; no adapter imports bootstrap or config;
only bootstrap and the CLI may import stripe_sandbox.

Every rule is also run on a source that breaks it (`test_each_rule_sees_its_violation`), so
none of them passes because the checker went blind.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "meterbill"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, source: str | None = None) -> set[str]:
    """Absolute names of every module `path` imports (relative imports resolved)."""
    if source is None:
        source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found.add(prefix)
            found.update(f"{prefix}.{alias.name}" for alias in node.names)
    return found


def _sources(*parts: str) -> list[Path]:
    return sorted(PACKAGE.joinpath(*parts).rglob("*.py"))


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _violations(paths: list[Path], forbidden: tuple[str, ...], *,
                source: str | None = None) -> list[str]:
    """Imports of `forbidden` modules (`source`: check this text as if it were each path)."""
    bad = []
    for path in paths:
        for name in imported_modules(path, source):
            if _within(name, forbidden):
                bad.append(f"{path.relative_to(PACKAGE)} imports {name}")
    return bad


def _outside(paths: list[Path], allowed: tuple[str, ...], *,
             source: str | None = None) -> list[str]:
    """Imports of anything but `allowed` modules and the standard library."""
    bad = []
    for path in paths:
        for name in imported_modules(path, source):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top == "__future__" or _within(name, allowed):
                continue
            bad.append(f"{path.relative_to(PACKAGE)} imports {name}")
    return bad


# services reach the database only through repositories (adapters/db).
SERVICES_NO_SQL = ("sqlalchemy",)
# ports describe the outside world in the domain's terms; adapters implement them.
PORTS_MAY_IMPORT = ("meterbill.domain", "meterbill.ports")
# bootstrap picks the adapters and reads the settings; an adapter gets what it needs passed in.
ADAPTERS_NO_WIRING = ("meterbill.bootstrap", "meterbill.config")


def test_the_layers_exist() -> None:
    # Guards the checks below against passing vacuously on a moved package.
    assert _sources("domain") and _sources("services") and _sources("ports")
    assert _sources("adapters")


def test_domain_imports_no_outer_layer() -> None:
    forbidden = ("meterbill.adapters", "meterbill.entrypoints", "meterbill.services",
                 "meterbill.bootstrap", "stripe", "sqlalchemy", "stripe_sandbox")
    assert _violations(_sources("domain"), forbidden) == []


def test_services_never_import_entrypoints_or_stripe() -> None:
    forbidden = ("meterbill.entrypoints", "meterbill.bootstrap", "stripe", "stripe_sandbox")
    assert _violations(_sources("services"), forbidden) == []


def test_services_reach_the_database_only_through_repositories() -> None:
    assert _violations(_sources("services"), SERVICES_NO_SQL) == []


def test_ports_import_only_domain_and_the_standard_library() -> None:
    assert _outside(_sources("ports"), PORTS_MAY_IMPORT) == []


def _adapter_modules() -> list[object]:
    return [pytest.param(path, id=path.relative_to(PACKAGE).as_posix())
            for path in _sources("adapters")]


@pytest.mark.parametrize("path", _adapter_modules())
def test_no_adapter_imports_bootstrap_or_config(path: Path) -> None:
    assert _violations([path], ADAPTERS_NO_WIRING) == []


def test_only_bootstrap_and_the_sandbox_command_import_the_sandbox() -> None:
    allowed = set(_sources("bootstrap"))
    allowed.update(_sources("entrypoints", "cli"))
    assert allowed
    others = [p for p in PACKAGE.rglob("*.py") if p not in allowed]
    assert _violations(others, ("stripe_sandbox",)) == []


@pytest.mark.parametrize("source, expected", [
    ("from ..adapters.db import models", "meterbill.adapters.db.models"),
    ("import stripe_sandbox.engine", "stripe_sandbox.engine"),
    ("from . import money", "meterbill.domain.money"),
])
def test_import_resolution(source: str, expected: str) -> None:
    # The checker must see relative imports for what they are, or the rules above prove nothing.
    assert expected in imported_modules(PACKAGE / "domain" / "plans.py", source)


def test_a_violation_is_reported() -> None:
    path = PACKAGE / "domain" / "plans.py"
    names = imported_modules(path, "from ..entrypoints.api import app")
    assert any(n.startswith("meterbill.entrypoints") for n in names)


@pytest.mark.parametrize("where, source, rule", [
    ("services/billing/tenants.py", "from sqlalchemy import select", "services"),
    ("services/webhooks/context.py", "from sqlalchemy.orm import Session", "services"),
    ("ports/stripe.py", "from ..adapters.db.models import Tenant", "ports"),
    ("ports/webhooks.py", "from ..services.errors import StaleTenant", "ports"),
    ("ports/notify.py", "import jinja2", "ports"),
    ("ports/stripe.py", "if TYPE_CHECKING:\n    import stripe", "ports"),
    ("adapters/mailer.py", "from ..config import Settings", "adapters"),
    ("adapters/tasks/inline.py", "def f():\n    from ...bootstrap import build", "adapters"),
])
def test_each_rule_sees_its_violation(where: str, source: str, rule: str) -> None:
    path = PACKAGE / where
    if rule == "services":
        found = _violations([path], SERVICES_NO_SQL, source=source)
    elif rule == "ports":
        found = _outside([path], PORTS_MAY_IMPORT, source=source)
    else:
        found = _violations([path], ADAPTERS_NO_WIRING, source=source)
    assert found, f"{where}: `{source}` breaks the {rule} rule, unseen"


@pytest.mark.parametrize("source", [
    "from ..domain.plans import MeterDefinition",
    "from .stripe import SubscriptionRecord",
    "from collections.abc import Mapping\nfrom typing import Protocol",
    "from __future__ import annotations\nimport json",
])
def test_ports_may_import_domain_each_other_and_the_standard_library(source: str) -> None:
    # The other side of the ports rule: what it allows, it must not report.
    assert _outside([PACKAGE / "ports" / "webhooks.py"], PORTS_MAY_IMPORT, source=source) == []
