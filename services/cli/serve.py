"""`herald serve`, `herald token`, `herald migrate`: run the services on this machine, print a
bearer token for grpcurl, bring the databases' schemas to the latest revision."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from services.cli.common import settings
from services.cli.output import fail

if TYPE_CHECKING:
    from services.kit.config import Settings

SERVICES = ("segment", "campaign", "delivery")
ServeDataDir = Annotated[Path | None, typer.Option(
    "--data-dir", file_okay=False, show_default=False,
    help="Where the SQLite databases and the generated API secret live (default: $HERALD_DATA_DIR or ./var).")]


def _settings(data_dir: Path | None, *, with_secret: bool = False) -> Settings:
    """The HERALD_* settings (with the API secret in force, generated if need be); a bad value, or
    a PostgreSQL database without the shared secrets, is one line and exit 2."""
    from services.kit.config import ConfigError, settings_from_env

    overrides: dict[str, Any] = {"data_dir": data_dir.resolve()} if data_dir else {}
    try:
        found = settings_from_env(**overrides)
        return found.with_secret() if with_secret else found
    except ConfigError as exc:
        fail(str(exc), 2)


def serve(data_dir: ServeDataDir = None) -> None:
    """Run the segment, campaign and delivery services as processes, restarting one that dies;
    SIGTERM or Ctrl-C stops them together."""
    from services.cli.supervisor import supervise

    raise typer.Exit(supervise(_settings(data_dir, with_secret=True)))


def token(
    data_dir: Annotated[Path | None, typer.Option("--data-dir", file_okay=False, show_default=False,
                                                  help="The data dir holding the generated secret.")] = None,
    sub: Annotated[str, typer.Option("--sub", help="The caller named in the token.")] = "cli",
    ttl: Annotated[float, typer.Option("--ttl", min=0, help="Seconds until it expires (0: never).")] = 0,
) -> None:
    """Print a bearer token for the API secret in force (for grpcurl's authorization header)."""
    from services.kit.auth import make_token

    print(make_token(settings(data_dir).api_secret, sub, ttl_s=ttl or None))


def migrate(
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", file_okay=False, show_default=False,
        help="Where the SQLite databases live (default: $HERALD_DATA_DIR or ./var).")] = None,
    service: Annotated[Literal["segment", "campaign", "delivery"] | None, typer.Option(
        "--service", show_default=False, help="Only this service's database (default: all three).")] = None,
) -> None:
    """Bring the services' database schemas to the latest revision, and exit."""
    raise typer.Exit(asyncio.run(migrate_databases(_settings(data_dir), [service] if service else SERVICES)))


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
