"""Schema migrations (Alembic): each service has its own history in `<service>/migrations/`
and its own version table, so services sharing one database never see each other's tables.

`migrate(engine, schema)` upgrades a database to head under a database-wide lock, so replicas
starting together migrate once: PostgreSQL takes an advisory lock for the transaction, SQLite
takes its write lock with BEGIN IMMEDIATE. All of a migration runs in that one transaction
(both backends have transactional DDL): a failed upgrade leaves the database as it was.
On SQLite, foreign keys are off while migrating (batch ALTERs recreate tables) and checked
before the commit.

A database made by the release before migrations (tables from `create_all`, no version
table) is adopted: stamped at the first revision, which creates exactly those tables.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.kit.config import settings_from_env
from services.kit.db import make_engine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Schema:
    """One service's schema: its tables, the folder of its Alembic history, its lock."""

    service: str
    metadata: MetaData
    script_location: Path
    # pg_advisory_xact_lock key: one per service, so services sharing a database migrate apart.
    lock_key: int
    # What `create_all` made before migrations existed: present without a version table = adopt.
    first_revision_tables: frozenset[str]

    @property
    def version_table(self) -> str:
        return f"alembic_version_{self.service}"

    def owns(self, name: str | None, type_: str, _parents: object = None) -> bool:
        """Alembic's include_name: only this service's tables (the database may be shared)."""
        return type_ != "table" or name in self.metadata.tables

    def alembic_config(self, connection: Connection | None = None) -> Config:
        """Alembic's configuration, built in code (no alembic.ini at run time)."""
        config = Config()
        config.set_main_option("script_location", str(self.script_location))
        config.attributes["connection"] = connection
        return config

    def migration_context(self, connection: Connection) -> MigrationContext:
        """A context on the service's version table, for reading revisions and comparing."""
        return MigrationContext.configure(connection, opts=self.context_options())

    def context_options(self) -> dict[str, Any]:
        return {"version_table": self.version_table, "target_metadata": self.metadata,
                "include_name": self.owns, "compare_type": True, "compare_server_default": True,
                # SQLite alters tables by copying them: later revisions' ALTERs need batch mode.
                "render_as_batch": True}


async def migrate(engine: AsyncEngine, schema: Schema) -> str:
    """Upgrades the service's database to head under a database lock; returns the revision."""
    # Alembic logs its dialect and DDL mode at INFO for every context, on every start: what
    # changed is logged below instead.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    async with _locked(engine, schema) as connection:
        before, after = await connection.run_sync(_upgrade, schema)
    if before != after:
        log.info("schema migrated", extra={"service": schema.service, "from_revision": before,
                                           "revision": after})
    return after


@asynccontextmanager
async def _locked(engine: AsyncEngine, schema: Schema) -> AsyncIterator[AsyncConnection]:
    """A connection in a transaction that holds the database's migration lock; commits at the end."""
    async with engine.connect() as connection:
        if connection.dialect.name != "sqlite":
            await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": schema.lock_key})
            yield connection
            await connection.commit()
            return
        try:
            # Off before BEGIN (it cannot change inside a transaction): a batch ALTER copies a table
            # and drops the old one, and with foreign keys on that DROP deletes referencing rows.
            await connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            # The write lock, taken now rather than at the first write: a second process waits
            # here (busy_timeout), then finds the schema current.
            await connection.exec_driver_sql("BEGIN IMMEDIATE")
            yield connection
            dangling = (await connection.exec_driver_sql("PRAGMA foreign_key_check")).all()
            if dangling:
                raise RuntimeError(f"{schema.service} migration left rows referencing missing rows: {dangling[:5]}")
            await connection.commit()
        finally:
            await connection.invalidate()  # its foreign keys are off: it must not go back to the pool


def _upgrade(connection: Connection, schema: Schema) -> tuple[str | None, str]:
    config = schema.alembic_config(connection)
    before = schema.migration_context(connection).get_current_revision()
    if before is None and _made_by_create_all(connection, schema):
        first = ScriptDirectory.from_config(config).get_base()
        assert first is not None, f"{schema.script_location} holds no revision"
        command.stamp(config, first)
        before = first
        log.info("adopted a schema made before migrations",
                 extra={"service": schema.service, "revision": before})
    command.upgrade(config, "head")
    after = schema.migration_context(connection).get_current_revision()
    assert after is not None
    return before, after


def _made_by_create_all(connection: Connection, schema: Schema) -> bool:
    """Whether the database holds the first revision's tables without a version table."""
    inspector = inspect(connection)
    if inspector.has_table(schema.version_table):
        return False
    present = schema.first_revision_tables & set(inspector.get_table_names())
    if present and present != schema.first_revision_tables:
        missing = ", ".join(sorted(schema.first_revision_tables - present))
        raise RuntimeError(f"{schema.service} database has some of its tables but not {missing}, and no "
                           f"{schema.version_table}: not a schema this release can adopt")
    return bool(present)


def run_env(schema: Schema) -> None:
    """The body of each service's env.py.

    `migrate` hands its locked connection over; the `alembic` command line (for
    `revision --autogenerate`) connects to the service's configured database instead.
    """
    if context.is_offline_mode():
        raise SystemExit("offline (--sql) migrations are not supported: run `herald migrate`")
    connection = context.config.attributes.get("connection")
    if connection is None:
        asyncio.run(_run_standalone(schema))
    else:
        _run_migrations(connection, schema)


def _run_migrations(connection: Connection, schema: Schema) -> None:
    context.configure(connection=connection, **schema.context_options())
    with context.begin_transaction():
        context.run_migrations()


async def _run_standalone(schema: Schema) -> None:
    engine = make_engine(settings_from_env().db_url(schema.service))
    try:
        async with _locked(engine, schema) as connection:
            await connection.run_sync(_run_migrations, schema)
    finally:
        await engine.dispose()
