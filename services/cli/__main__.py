"""`herald serve` runs the three services as separate processes, restarts one that dies and
stops them together on SIGTERM/SIGINT; `herald token` prints a bearer token for grpcurl;
`herald watch CAMPAIGN_ID` follows a campaign until it ends; `herald migrate` brings the services'
databases to the latest schema and exits."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from importlib import import_module
from pathlib import Path
from typing import Any

import grpc

from herald.campaign.v1 import campaign_pb2
from services.client import HeraldClient

from services.cli.supervisor import SERVICES, supervise
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

    migrate = commands.add_parser("migrate", help="bring the services' database schemas to the latest revision")
    migrate.add_argument("--data-dir", help="where the SQLite databases live (default: $HERALD_DATA_DIR or ./var)")
    migrate.add_argument("--service", choices=SERVICES, help="only this service's database (default: all three)")

    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {"data_dir": Path(args.data_dir).resolve()} if args.data_dir else {}
    settings = settings_from_env(**overrides)
    if args.command == "migrate":
        return asyncio.run(migrate_databases(settings, [args.service] if args.service else SERVICES))
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


async def migrate_databases(settings: Settings, services: Sequence[str]) -> int:
    """Migrates each service's database to head, one after the other, printing its revision."""
    # Imported here: Alembic and the engines would add a fraction of a second to every command.
    from services.kit.db import make_engine
    from services.kit.migrate import migrate

    settings.data_dir.mkdir(parents=True, exist_ok=True)  # the default SQLite files live there
    for service in services:
        engine = make_engine(settings.db_url(service))
        try:
            revision = await migrate(engine, import_module(f"services.{service}_svc.migrations").SCHEMA)
        finally:
            await engine.dispose()
        print(f"{service}: {revision}", flush=True)
    return 0


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
