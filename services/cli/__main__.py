"""`herald serve` runs the three services as separate processes, restarts one that dies and
stops them together on SIGTERM/SIGINT; `herald token` prints a bearer token for grpcurl."""

from __future__ import annotations

import argparse
import os
import sys

from services.cli.supervisor import SERVICES, supervise
from services.kit.auth import make_token
from services.kit.config import settings_from_env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="herald", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run segment, campaign and delivery services")
    serve.add_argument("--data-dir", help="where databases and the generated API secret live "
                                          "(default: $HERALD_DATA_DIR or ./var)")

    token = commands.add_parser("token", help="print a bearer token for the API secret in force")
    token.add_argument("--data-dir", help="data dir holding the generated secret")
    token.add_argument("--sub", default="cli", help="the caller named in the token (default: cli)")
    token.add_argument("--ttl", type=float, default=0, help="seconds until it expires (default: never)")

    args = parser.parse_args(argv)
    overrides = {"data_dir": os.path.abspath(args.data_dir)} if args.data_dir else {}
    settings = settings_from_env(**overrides).with_secret()
    if args.command == "token":
        print(make_token(settings.api_secret, args.sub, ttl_s=args.ttl or None))
        return 0
    return supervise(settings)


if __name__ == "__main__":
    sys.exit(main())
