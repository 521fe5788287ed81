"""`herald serve` runs the three services as separate processes, restarts one that dies and
stops them together on SIGTERM/SIGINT; `herald token` prints a bearer token for grpcurl;
`herald watch CAMPAIGN_ID` follows a campaign until it ends."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import grpc

from herald.campaign.v1 import campaign_pb2
from services.client import HeraldClient

from services.cli.supervisor import supervise
from services.kit.auth import make_token
from services.kit.config import ConfigError, Settings, settings_from_env


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

    watch = commands.add_parser("watch", help="follow a campaign's status and progress until it ends")
    watch.add_argument("campaign_id")
    watch.add_argument("--data-dir", help="data dir holding the generated secret")

    args = parser.parse_args(argv)
    overrides = {"data_dir": os.path.abspath(args.data_dir)} if args.data_dir else {}
    settings = settings_from_env(**overrides)
    if args.command == "serve":
        return supervise(settings.with_secret())
    try:
        settings = settings.with_existing_secret()
    except ConfigError as exc:
        print(f"herald: {exc}", file=sys.stderr)
        return 2
    if args.command == "token":
        print(make_token(settings.api_secret, args.sub, ttl_s=args.ttl or None))
        return 0
    if args.command == "watch":
        return asyncio.run(watch_campaign(settings, args.campaign_id))
    raise AssertionError(f"unhandled command {args.command}")


async def watch_campaign(settings: Settings, campaign_id: str) -> int:
    """Prints one line per update: status, progress and counters."""
    async with HeraldClient.from_settings(settings, "cli") as herald:
        try:
            async for campaign in herald.watch_campaign(campaign_id):
                s = campaign.stats
                status = campaign_pb2.CampaignStatus.Name(campaign.status).removeprefix("CAMPAIGN_STATUS_").lower()
                print(f"{status:11} {s.progress:6.1%}  sent {s.stats_messages_sent}  "
                      f"skipped {s.recipients_skipped}  failed {s.recipients_failed}  "
                      f"of {s.recipients_total}  channels created {s.stats_channels_created}  "
                      f"read {s.stats_users_read}", flush=True)
        except grpc.aio.AioRpcError as exc:
            print(f"herald: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
