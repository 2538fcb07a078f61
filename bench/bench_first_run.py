"""Time from `make run` on a fresh clone to a served, seeded month (docs/benchmarks.md).

A fresh clone is `git clone` of this checkout into a temporary directory. Two cases:

- venv built: the clone runs what `make run` runs once `.venv` is installed
  (`meterbill serve --seed-demo`) with this interpreter's packages and the clone's code;
- venv not built (`--with-install`): `make run` itself, which creates `.venv` and installs
  meterbill and its dependencies from the package index first.

For each: seconds to a served API (`/health` answers 200), and to the seeded month (the server
prints its end table); then a second start on the same directory, which reuses the data: seconds
to a served API. Ratios are of figures measured in this run.

    python bench/bench_first_run.py [--with-install]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SEEDED = "A month of billing is seeded"
TARGET_SECONDS = 60.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _env(clone: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("STRIPE_", "METERBILL_", "DATABASE_URL", "USAGE_", "PORT"))}
    env.update(PORT=str(port), PYTHONUNBUFFERED="1")
    return env


def _health(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def _run(command: list[str], clone: Path, env: dict[str, str], port: int, log: Path, *,
         wait_seeded: bool, timeout: float) -> tuple[float, float | None]:
    """Start the server; seconds to /health, and to the seeded month (None if not waited)."""
    started = time.monotonic()
    with log.open("w") as out:
        server = subprocess.Popen(command, cwd=clone, env=env, stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    served = seeded = None
    last = ""
    try:
        while time.monotonic() - started < timeout:
            if server.poll() is not None:
                raise SystemExit(f"the server exited ({server.returncode}):\n"
                                 f"{log.read_text()[-3000:]}")
            if served is None and _health(port):
                served = time.monotonic() - started
                print(f"  served after {served:.1f} s", flush=True)
                if not wait_seeded:
                    break
            text = log.read_text(errors="replace")
            if served is not None and SEEDED in text:
                seeded = time.monotonic() - started
                break
            days = [line for line in text.splitlines() if "demo: day" in line]
            if days and days[-1] != last:  # progress: the simulated day
                last = days[-1]
                print("  " + last.split("demo: ", 1)[1][:60], flush=True)
            time.sleep(0.2)
        else:
            raise SystemExit(f"no {'seeded month' if served else 'answer'} within {timeout} s:"
                             f"\n{log.read_text()[-3000:]}")
    finally:
        os.killpg(server.pid, 15)
        server.wait(60)
    assert served is not None
    return served, seeded


def _case(name: str, clone: Path, command: list[str], env: dict[str, str], port: int,
          timeout: float) -> dict[str, float]:
    print(f"{name}: first start", flush=True)
    served, seeded = _run(command, clone, env, port, clone / "first.log", wait_seeded=True,
                          timeout=timeout)
    assert seeded is not None
    print(f"{name}: second start (reuses var/)", flush=True)
    again, _ = _run(command, clone, env, port, clone / "second.log", wait_seeded=False,
                    timeout=120)
    if SEEDED in (clone / "second.log").read_text():
        raise SystemExit("the second start seeded again")
    return {"served": served, "seeded": seeded, "second": again}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--with-install", action="store_true",
                        help="also time `make run` with no .venv (installs from the index)")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="meterbill-first-run-") as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
        port = _free_port()
        env = _env(clone, port)
        env["PYTHONPATH"] = str(clone / "src")  # this interpreter's packages, the clone's code
        meterbill = str(Path(sys.executable).parent / "meterbill")
        results["venv built"] = _case(
            "venv built", clone,
            [meterbill, "serve", "--host", "127.0.0.1", "--port", str(port), "--seed-demo"],
            env, port, timeout=600)
        if args.with_install:
            shutil.rmtree(clone / "var")
            env.pop("PYTHONPATH")
            results["venv not built"] = _case("venv not built", clone, ["make", "run"], env,
                                              port, timeout=1800)
    print("\n| case | served API (s) | seeded month (s) | second start (s) | seeded / 60 s "
          "target | second / first start |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, r in results.items():
        print(f"| {name} | {r['served']:.1f} | {r['seeded']:.1f} | {r['second']:.1f} | "
              f"{r['seeded'] / TARGET_SECONDS:.2f} | {r['second'] / r['served']:.2f} |")


if __name__ == "__main__":
    main()
