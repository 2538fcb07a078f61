"""The shell examples of README.md and docs/*.md run, as written, and succeed.

Which blocks are examples (the convention, also in docs/examples.md): fenced blocks tagged
`sh`, `bash`, `shell` (a script) or `console` (a transcript: its `$ ` commands run, the rest is
output and is not compared). Every other fence must name its language (`text`, `json`, ...).
An HTML comment just before a fence changes how it runs:

    <!-- example: skip REASON -->            not run, for the stated reason
    <!-- example: server HOST:PORT -->       a server: run in the background until the file's
                                             examples end, ready once HOST:PORT answers

How each Markdown file is run, as a reader who followed the README would run it:

- in a new, empty temporary directory standing for the clone (so `var/` is fresh), holding only
  `.venv`: a link to the virtualenv running the tests, so `. .venv/bin/activate` works;
- against `meterbill serve` in sandbox mode, started there by the harness (as `make run`
  would) on a free port, with no setting from the caller's environment that would leave
  sandbox mode (every variable named like a meterbill setting is removed);
- in document order, each block one test case (`README.md-3` is the third example of the
  README), run by `bash -e -o pipefail`: every command must succeed. Blocks share what a
  terminal shares: the server and its database, the files in the directory, and the exported
  variables and working directory a block leaves behind. Selecting one case alone runs the
  file's earlier examples first.
- the environment: `meterbill` and `python` on PATH (the directory of the running
  interpreter), and the variables the README has the reader set:
  `METERBILL_API_TOKEN` (outside the README, which exports it: what `meterbill api-token`
  prints, the development token the server keeps beside its database), `PORT` (the server's
  port, as `make run` reads it) and `METERBILL_URL` (`http://127.0.0.1:$PORT`);
- `curl` is the system's curl with `--fail-with-body` added, so that an HTTP error answer
  (400 and above) fails the example instead of passing unnoticed; examples that mean to show
  an error answer must say so with `|| true` or an exit-status check.

A failing case shows the block, its exit code, stdout and stderr, and the end of the server's
log. Dates in examples must be computed (`$(date -u +%s)`, `$(date -u +%Y-%m-%dT%H:%M:%SZ)`),
since usage older than 35 days is refused.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from meterbill.config import Settings

from .examples import Example, console_commands, examples, fences, problems

REPO = Path(__file__).resolve().parents[2]
DOCS = ["README.md", *(f"docs/{p.name}" for p in sorted((REPO / "docs").glob("*.md")))]
EXAMPLES = [example for doc in DOCS for example in examples(REPO / doc, doc)]

BLOCK_TIMEOUT = 120.0  # seconds for one block
START_TIMEOUT = 60.0  # seconds for a server to answer
LOG_TAIL = 40  # lines of the server's log shown with a failure
CURL_CODES = {6: "could not resolve the host", 7: "could not connect",
              22: "an HTTP error answer, its body is in stdout", 28: "timed out"}


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    seconds: float


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _stop(process: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    """End a process started in its own session, and everything it started."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    else:  # its children may outlive it
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)


def _meterbill() -> str:
    beside = Path(sys.executable).parent / "meterbill"
    return str(beside) if beside.exists() else shutil.which("meterbill") or "meterbill"


def _tail(path: Path, lines: int = LOG_TAIL) -> str:
    if not path.exists():
        return "(no output)"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:]) or "(no output)"


class DocRun:
    """One Markdown file's terminal: a clone directory, a server, the exported variables."""

    def __init__(self, doc: str, root: Path) -> None:
        self.doc = doc
        self.clone = root / "clone"  # the reader's working directory
        self.harness = root / "harness"  # scripts, logs, the curl wrapper
        self.clone.mkdir()
        (self.harness / "bin").mkdir(parents=True)
        self._link_virtualenv()
        self.port = _free_port()
        self.server_env = self._environment()  # the terminal running the server
        # The examples' terminal, changed by what they export. The server keeps its development
        # token beside the database, and `meterbill api-token` prints it (README); a reader of
        # docs/ other than the README has exported it as the README says.
        self.env = dict(self.server_env)
        self.cwd = self.clone
        self.server: subprocess.Popen[bytes] | None = None
        self.server_log = self.harness / "meterbill-serve.log"
        self.backgrounds: list[subprocess.Popen[bytes]] = []
        self.done: set[int] = set()
        self.failed: list[str] = []

    # -- set-up ----------------------------------------------------------------------------

    def _link_virtualenv(self) -> None:
        """`.venv` as `make run` leaves it in a clone: the virtualenv running these tests."""
        venv = Path(sys.prefix)
        if (venv / "bin" / "activate").exists():
            (self.clone / ".venv").symlink_to(venv, target_is_directory=True)
            return
        # Not in a virtualenv: an activate script that does what matters here.
        activate = self.clone / ".venv" / "bin" / "activate"
        activate.parent.mkdir(parents=True)
        activate.write_text(f'PATH="{Path(sys.executable).parent}:$PATH"\nexport PATH\n')

    def _environment(self) -> dict[str, str]:
        settings = {name.upper() for name in Settings.model_fields}
        env = {k: v for k, v in os.environ.items()
               if k not in settings and k not in ("HOST", "PORT", "METERBILL_URL")}
        curl = shutil.which("curl")
        if curl is not None:
            wrapper = self.harness / "bin" / "curl"
            wrapper.write_text("#!/bin/sh\n# tests/docs: an HTTP error answer fails the "
                               f"example\nexec '{curl}' --fail-with-body \"$@\"\n")
            wrapper.chmod(0o755)
        path = [str(self.harness / "bin"), str(Path(sys.executable).parent), env.get("PATH", "")]
        env.update(PATH=os.pathsep.join(path), PORT=str(self.port),
                   METERBILL_URL=f"http://127.0.0.1:{self.port}",
                   PYTHONUNBUFFERED="1")
        return env

    # -- meterbill's server ----------------------------------------------------------------

    def ensure_server(self) -> None:
        if self.server is not None and self.server.poll() is None:
            return
        with self.server_log.open("ab") as log:
            self.server = subprocess.Popen(
                [_meterbill(), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=self.clone, env=self.server_env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                pytest.fail(f"meterbill serve exited ({self.server.returncode}) before "
                            f"answering:\n{_tail(self.server_log)}", pytrace=False)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2):
                    pass
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
                continue
            if self.doc != "README.md" and "METERBILL_API_TOKEN" not in self.env:
                self.env["METERBILL_API_TOKEN"] = subprocess.run(
                    [_meterbill(), "api-token"], cwd=self.clone, env=self.server_env,
                    capture_output=True, text=True, check=True).stdout.strip()
            return
        pytest.fail(f"meterbill serve did not answer /health within {START_TIMEOUT:.0f} s:\n"
                    f"{_tail(self.server_log)}", pytrace=False)

    def stop_server(self) -> None:
        if self.server is not None:
            _stop(self.server)
            self.server = None

    def close(self) -> None:
        for process in self.backgrounds:
            _stop(process, grace=5.0)
        self.stop_server()

    # -- examples --------------------------------------------------------------------------

    def _script(self, example: Example, env_out: Path) -> Path:
        script = self.harness / f"example-{example.number}.sh"
        script.write_text(
            f"__example_env_out='{env_out}'\n"
            "trap 'env -0 > \"$__example_env_out\"' EXIT\n"
            "set -e -o pipefail\n"
            f"# ---- {example.where}, as written ----\n"
            f"{example.script}")
        return script

    def run(self, example: Example) -> Outcome:
        """Run one example (its directive obeyed) and keep the state it leaves."""
        directive = example.directive.kind if example.directive else None
        if directive == "server":
            return self._start_background(example)
        self.ensure_server()
        env_out = self.harness / f"example-{example.number}.env"
        started = time.monotonic()
        process = subprocess.Popen(
            ["bash", "--noprofile", "--norc", str(self._script(example, env_out))],
            cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True)
        try:
            out, err = process.communicate(timeout=BLOCK_TIMEOUT)
            code = process.returncode
        except subprocess.TimeoutExpired:
            _stop(process, grace=2.0)
            out, err = process.communicate()
            code = -1
            err += f"\n(tests/docs: stopped after {BLOCK_TIMEOUT:.0f} s)".encode()
        outcome = Outcome(code, out.decode(errors="replace"), err.decode(errors="replace"),
                          time.monotonic() - started)
        if code == 0 and env_out.exists():
            self._keep_state(env_out)
        return outcome

    def _keep_state(self, env_out: Path) -> None:
        env: dict[str, str] = {}
        for entry in env_out.read_bytes().decode(errors="replace").split("\0"):
            name, sep, value = entry.partition("=")
            if sep and name not in ("_", "SHLVL"):
                env[name] = value
        pwd = env.get("PWD")
        if pwd and Path(pwd).is_dir():
            self.cwd = Path(pwd)
        self.env = env

    def _start_background(self, example: Example) -> Outcome:
        assert example.directive is not None
        host, port = example.directive.address
        if _answers(host, port):
            pytest.skip(f"{example.where} starts a server on {host}:{port}, where something "
                        "else already listens on this machine")
        log = self.harness / f"example-{example.number}.log"
        started = time.monotonic()
        with log.open("wb") as out:
            process = subprocess.Popen(
                ["bash", "--noprofile", "--norc", "-e", "-o", "pipefail", "-c", example.script],
                cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True)
        self.backgrounds.append(process)
        while time.monotonic() - started < START_TIMEOUT:
            if process.poll() is not None:
                return Outcome(process.returncode or 1, _tail(log), "(exited before "
                               f"{host}:{port} answered)", time.monotonic() - started)
            if _answers(host, port):
                return Outcome(0, "", "", time.monotonic() - started)
            time.sleep(0.1)
        return Outcome(-1, _tail(log), f"(nothing answered on {host}:{port} within "
                       f"{START_TIMEOUT:.0f} s)", time.monotonic() - started)

    def report(self, example: Example, outcome: Outcome) -> str:
        parts = [f"{example.where} failed with exit code {outcome.code} after "
                 f"{outcome.seconds:.1f} s.",
                 "--- the block ---", example.body.rstrip(),
                 "--- stdout ---", outcome.stdout.rstrip() or "(empty)",
                 "--- stderr ---", outcome.stderr.rstrip() or "(empty)",
                 f"--- meterbill serve's log (last {LOG_TAIL} lines) ---", _tail(self.server_log)]
        if "curl" in example.script and outcome.code in CURL_CODES:
            parts.append(f"(curl's exit code {outcome.code}: {CURL_CODES[outcome.code]})")
        if self.failed:
            parts.append(f"(earlier examples of this file failed too: {', '.join(self.failed)})")
        return "\n".join(parts)


class DocRuns:
    """One `DocRun` at a time (one server on the machine's shared cores), in file order."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self.factory = factory
        self.current: DocRun | None = None

    def for_doc(self, doc: str) -> DocRun:
        if self.current is None or self.current.doc != doc:
            self.close()
            self.current = DocRun(doc, self.factory.mktemp(doc.replace("/", "_")))
        return self.current

    def close(self) -> None:
        if self.current is not None:
            self.current.close()
            self.current = None


@pytest.fixture(scope="session")
def doc_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocRuns]:
    runs = DocRuns(tmp_path_factory)
    yield runs
    runs.close()


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda example: example.id)
def test_example(example: Example, doc_runs: DocRuns) -> None:
    if example.skip_reason is not None:
        pytest.skip(f"{example.where}: {example.skip_reason}")
    if "curl" in example.script and shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    run = doc_runs.for_doc(example.doc)
    for earlier in EXAMPLES:  # when this case was picked alone: what the reader did before
        if (earlier.doc == example.doc and earlier.number < example.number
                and earlier.number not in run.done and earlier.skip_reason is None):
            outcome = run.run(earlier)
            run.done.add(earlier.number)
            if outcome.code != 0:
                run.failed.append(earlier.id)
                pytest.fail(f"an earlier example this one builds on failed:\n"
                            f"{run.report(earlier, outcome)}", pytrace=False)
    outcome = run.run(example)
    run.done.add(example.number)
    if outcome.code != 0:
        message = run.report(example, outcome)
        run.failed.append(example.id)
        pytest.fail(message, pytrace=False)


def test_the_harness_keeps_state_and_reports_http_errors(tmp_path: Path) -> None:
    def example(number: int, script: str) -> Example:
        return Example("page.md", number, "sh", number * 10, script, None)

    run = DocRun("page.md", tmp_path)
    try:
        first = run.run(example(1, "export GREETING=hello\nmkdir -p sub && cd sub\n"))
        assert first.code == 0, first
        second = run.run(example(2, 'test "$GREETING" = hello && test "${PWD##*/}" = sub\n'))
        assert second.code == 0, second
        missing = example(3, 'curl -s "$METERBILL_URL/tenants/nobody" '
                             '-H "Authorization: Bearer $METERBILL_API_TOKEN"\n')
        refused = run.run(missing)
        assert refused.code == 22 and "unknown_tenant" in refused.stdout, refused
        report = run.report(missing, refused)
        assert "page.md, example 3 (the block at line 30) failed with exit code 22" in report
        assert '/tenants/nobody' in report and "meterbill serve's log" in report
    finally:
        run.close()


@pytest.mark.parametrize("doc", DOCS)
def test_every_block_follows_the_example_convention(doc: str) -> None:
    assert problems(REPO / doc, doc) == []


def test_the_readme_has_examples_to_run() -> None:
    assert any(e.doc == "README.md" and e.skip_reason is None for e in EXAMPLES)


def test_console_blocks_run_their_commands_only() -> None:
    transcript = ("$ curl -s localhost \\\n    -d x\n{\"ok\": true}\n\n"
                  "$ meterbill tenants list\nno tenants\n")
    assert console_commands(transcript) == ["curl -s localhost \\\n    -d x",
                                            "meterbill tenants list"]


def test_fences_are_read_with_their_directives(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("text\n\n<!-- example: skip needs a card reader -->\n```sh\nls\n```\n\n"
                    "- item:\n\n  ```console\n  $ echo hi\n  hi\n  ```\n\n```\nbare\n```\n"
                    "<!-- example: server 127.0.0.1:9 -->\n\n```bash\nsleep 1\n```\n")
    found = examples(page, "page.md")
    assert [(e.number, e.language, e.line, e.skip_reason) for e in found] == [
        (1, "sh", 4, "needs a card reader"), (2, "console", 10, None), (3, "bash", 20, None)]
    assert found[1].script == "echo hi"
    assert found[2].directive is not None and found[2].directive.address == ("127.0.0.1", 9)
    assert [f.language for f in fences(page, "page.md")] == ["sh", "console", "", "bash"]
    assert problems(page, "page.md") == [
        "page.md:15: a fence without a language; say `sh` or `console` (run by tests/docs) "
        "or `text`, `json`, ... (not run)"]
