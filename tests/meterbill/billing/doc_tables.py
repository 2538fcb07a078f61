"""Tables of docs/billing.md that tests check against: the rows between two HTML comment
markers (`<!-- NAME:start -->` and `<!-- NAME:end -->`), as lists of stripped cells."""

from __future__ import annotations

from pathlib import Path

BILLING_DOC = Path(__file__).resolve().parents[3] / "docs" / "billing.md"


def table_rows(name: str, doc: Path = BILLING_DOC) -> list[list[str]]:
    """The body rows (no header, no rule) of the table marked `name`."""
    text = doc.read_text()
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    assert start in text and end in text, f"{doc.name} has no table marked {name!r}"
    table = text.split(start, 1)[1].split(end, 1)[0]
    return [[cell.strip() for cell in row.strip().strip("|").split("|")]
            for row in table.strip().splitlines()[2:]]
