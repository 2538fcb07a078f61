"""`python -m stripe_sandbox --host 127.0.0.1 --port 12111`."""

from __future__ import annotations

import argparse
import sys

from .engine import Sandbox, SandboxConfig
from .server import SandboxServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stripe_sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111, help="0 picks a free port")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    parser.add_argument("--no-validate", action="store_true",
                        help="do not check parameters against stripe-python's types")
    args = parser.parse_args(argv)
    sandbox = Sandbox(SandboxConfig(validate_params=not args.no_validate))
    server = SandboxServer(sandbox, args.host, args.port, verbose=args.verbose)
    sandbox.config.public_url = server.url
    print(f"stripe_sandbox listening on {server.url}", flush=True)
    print(f"port {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
