"""`python -m stripe_sandbox --host 127.0.0.1 --port 12111`: a local, stateful Stripe API.

State is in memory unless `--data FILE` is given. Limits and faults are off unless asked for;
they can also be changed while running at `/_sandbox/faults`, delivery knobs at
`/_sandbox/webhooks`.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from .engine import Sandbox, SandboxConfig
from .server import SandboxServer


def _rate(text: str) -> float:
    from .faults import RATE_PRESETS

    if text.lower() in RATE_PRESETS:
        return RATE_PRESETS[text.lower()]
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected requests per second, 'test' (25) or 'live' (100), got {text!r}"
        ) from None
    if value <= 0:
        raise argparse.ArgumentTypeError("the rate limit must be positive")
    return value


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a share between 0 and 1, got {text!r}"
        ) from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a share between 0 and 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stripe_sandbox", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111, help="0 picks a free port")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    parser.add_argument("--no-validate", action="store_true",
                        help="do not check parameters against stripe-python's types")
    parser.add_argument("--data", metavar="FILE",
                        help="keep state in FILE (JSON) across restarts")
    parser.add_argument("--draft-grace-seconds", type=int, default=3600, metavar="SECONDS",
                        help="how long a subscription's draft invoice waits before it is "
                             "finalized (Stripe: an hour after invoice.created)")

    faults = parser.add_argument_group("limits and faults (all off by default)")
    faults.add_argument("--rate-limit", type=_rate, metavar="N",
                        help="answer 429 rate_limit above N requests/s ('test' = 25, "
                             "'live' = 100, Stripe's own limits)")
    faults.add_argument("--rate-limit-should-retry", action="store_true",
                        help="send Stripe-Should-Retry: true with rate-limit 429s so that "
                             "stripe-python retries them (Stripe itself does not)")
    faults.add_argument("--fault-500", type=_share, default=0.0, metavar="RATE",
                        help="share of requests answered 500 api_error")
    faults.add_argument("--fault-lock-timeout", type=_share, default=0.0, metavar="RATE",
                        help="share of requests answered 429 lock_timeout (retryable)")
    faults.add_argument("--fault-latency-ms", type=int, default=0, metavar="MS",
                        help="added latency per request")
    faults.add_argument("--fault-latency-rate", type=_share, default=1.0, metavar="RATE",
                        help="share of requests that get the added latency")
    faults.add_argument("--fault-drop", type=_share, default=0.0, metavar="RATE",
                        help="share of requests whose connection is dropped unanswered")
    faults.add_argument("--fault-drop-after", type=_share, default=0.0, metavar="RATE",
                        help="share of requests that run but whose answer is lost")
    faults.add_argument("--fault-path", action="append", default=[], metavar="PREFIX",
                        help="limit faults to paths starting with PREFIX (repeatable)")
    faults.add_argument("--fault-seed", type=int, metavar="N",
                        help="seed for the fault dice, for repeatable runs")

    hooks = parser.add_argument_group("webhook delivery")
    hooks.add_argument("--forward-to", action="append", default=[], metavar="URL",
                       help="register a webhook endpoint for every event at URL and print its "
                            "signing secret (repeatable)")
    hooks.add_argument("--webhook-timeout", type=float, default=10.0, metavar="SECONDS",
                       help="a delivery not answered within this is retried")
    hooks.add_argument("--webhook-retry-base", type=float, default=1200.0, metavar="SECONDS",
                       help="wait before the first retry; doubles for each further retry")
    hooks.add_argument("--webhook-max-attempts", type=int, default=4, metavar="N",
                       help="attempts per event and endpoint, the first included")
    hooks.add_argument("--webhook-duplicate", action="store_true",
                       help="deliver every event twice")
    hooks.add_argument("--webhook-shuffle", type=float, default=0.0, metavar="SECONDS",
                       help="hold each delivery back a random time up to SECONDS, so events "
                            "arrive out of order")
    hooks.add_argument("--webhook-delay", type=float, default=0.0, metavar="SECONDS",
                       help="hold every first delivery attempt back this long")
    return parser


def configure(sandbox: Sandbox, args: argparse.Namespace) -> None:
    """Apply the fault and delivery flags to `sandbox`; ValueError for a bad combination."""
    from . import delivery, faults

    fault_config = faults.FaultConfig(
        rate_limit=args.rate_limit,
        rate_limit_should_retry=args.rate_limit_should_retry,
        lock_timeout_rate=args.fault_lock_timeout,
        error_rate=args.fault_500,
        latency_ms=args.fault_latency_ms,
        latency_rate=args.fault_latency_rate,
        drop_rate=args.fault_drop,
        drop_after_rate=args.fault_drop_after,
        paths=tuple(args.fault_path),
        seed=args.fault_seed,
    )
    delivery_config = delivery.DeliveryConfig(
        timeout_seconds=args.webhook_timeout,
        retry_base_seconds=args.webhook_retry_base,
        max_attempts=args.webhook_max_attempts,
        duplicate=args.webhook_duplicate,
        shuffle_seconds=args.webhook_shuffle,
        delay_seconds=args.webhook_delay,
    )
    if args.draft_grace_seconds < 0:
        raise ValueError("--draft-grace-seconds must be 0 or more")
    sandbox.config.draft_grace_seconds = args.draft_grace_seconds
    fault_config.validate()
    delivery_config.validate()
    faults.install(sandbox).configure(fault_config)
    delivery.install(sandbox, delivery_config)


def _forward(sandbox: Sandbox, url: str) -> str:
    """An endpoint for every event at `url` (reused after a restart with --data); its secret."""
    import json
    from urllib.parse import urlencode

    for endpoint in sandbox.store.all("webhook_endpoint"):
        if endpoint["url"] == url and endpoint["enabled_events"] == ["*"]:
            return str(endpoint["_secret"])
    body = urlencode({"url": url, "enabled_events[0]": "*"}).encode()
    response = sandbox.handle("POST", "/v1/webhook_endpoints",
                              {"Authorization": "Bearer sk_test_sandbox",
                               "Content-Type": "application/x-www-form-urlencoded"}, body)
    answer = json.loads(response.body)
    if response.status != 200:
        raise SystemExit(f"--forward-to {url}: {answer['error']['message']}")
    return str(answer["secret"])


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    sandbox = Sandbox(SandboxConfig(validate_params=not args.no_validate))
    if args.data:
        from .persistence import PersistenceError, attach

        try:
            attach(sandbox, args.data)
        except PersistenceError as error:
            print(f"stripe_sandbox: {error}", file=sys.stderr)
            return 2
    server = SandboxServer(sandbox, args.host, args.port, verbose=args.verbose)
    sandbox.set_public_url(server.url)
    # Endpoints first: the faults configured next must not hit the sandbox's own set-up.
    for url in args.forward_to:
        print(f"forwarding every event to {url} (signing secret {_forward(sandbox, url)})",
              flush=True)
    try:
        configure(sandbox, args)
    except ValueError as error:
        print(f"stripe_sandbox: {error}", file=sys.stderr)
        server.server_close()
        return 2
    # `kill` (SIGTERM) ends the server as Ctrl-C does, so that --data is saved.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    print(f"stripe_sandbox listening on {server.url}", flush=True)
    print(f"port {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        keeper = getattr(sandbox, "persistence", None)
        if keeper is not None:
            keeper.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
