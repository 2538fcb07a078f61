"""examples/walkthrough.ipynb runs (nbclient), so that it cannot rot: each step's output is what
the text around it says."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "walkthrough.ipynb"


def _text(cell: nbformat.NotebookNode) -> str:
    return "".join(out.get("text", "") for out in cell.get("outputs", []))


def test_the_walkthrough_runs_and_says_what_it_shows() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3").execute()
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    outputs = [_text(cell) for cell in code]
    assert '"mode": "sandbox"' in outputs[0]
    assert '"status": "trialing"' in outputs[1]
    assert '"used": 12500' in outputs[2] and '"duplicates": 1' in outputs[2]
    assert '"to": "reminder"' in outputs[3] and "did not go through" in outputs[3]
    assert "'warning')" in outputs[4] and "service suspended on" in outputs[4]
    assert "paid 2900" in outputs[5] and '"reason": "subscription active"' in outputs[5]
    assert '"plan": "pro"' in outputs[6] and '"effective": "now"' in outputs[6]
    timeline = outputs[7].splitlines()
    assert [line.split()[-1] for line in timeline] == ["attempt(s)", "attempt(s)", "restored"]
    assert len({line[:10] for line in timeline}) == 2  # two days apart on the test clock
