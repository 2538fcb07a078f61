"""The repository is the whole project: a clone in an empty folder reads nothing beside it.

Two checks: no tracked file names a path outside the repository, and a fresh `git clone` into
`<tmp>/alone/mb` collects the whole suite and runs the sandbox's reference-data tests while an
audit hook records every file opened under `<tmp>/alone` but outside the clone (a sibling
folder of the checkout is exactly what a fresh clone does not have).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# A sibling folder of the checkout, or an absolute path of the machine the code was written on.
OUTSIDE = re.compile(r"\.\./shared|shared/(stripe|DESIGN)|/work/|/home/\w+/|/root/")
# Runs pytest in the clone with an audit hook that notes every path opened outside it.
AUDITED_PYTEST = """
import json, os, sys
root = os.path.realpath(sys.argv[1]); fence = os.path.dirname(root); seen = set()
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        path = os.path.realpath(os.fsdecode(args[0]))
        if path.startswith(fence + os.sep) and not path.startswith(root + os.sep):
            seen.add(path)
sys.addaudithook(hook)
import pytest
code = pytest.main(sys.argv[3:])
with open(sys.argv[2], "w") as out:
    json.dump(sorted(seen), out)
sys.exit(code)
"""


def _tracked_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")
    return [ROOT / name for name in listed if name]


def _is_checkout() -> bool:
    return shutil.which("git") is not None and (ROOT / ".git").exists()


needs_checkout = pytest.mark.skipif(not _is_checkout(), reason="not a git checkout")


@needs_checkout
def test_no_tracked_file_names_a_path_outside_the_repository() -> None:
    offenders = []
    for path in _tracked_files():
        if path == Path(__file__) or path.suffix in {".png", ".pdf", ".ico"}:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


@needs_checkout
def test_a_fresh_clone_collects_and_reads_nothing_beside_itself(tmp_path: Path) -> None:
    clone = tmp_path / "alone" / "mb"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    report = tmp_path / "opened-outside.json"
    env = {**os.environ, "PYTHONPATH": str(clone / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    for args in (["--collect-only", "-q"],
                 ["-q", "-p", "no:cacheprovider", "tests/sandbox/test_fidelity.py",
                  "tests/sandbox/test_cli_triggers.py", "tests/sandbox/test_events.py"]):
        run = subprocess.run([sys.executable, "-c", AUDITED_PYTEST, str(clone), str(report),
                              *args], cwd=clone, env=env, capture_output=True, text=True,
                             timeout=600)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert json.loads(report.read_text()) == [], f"opened outside the clone by {args}"
