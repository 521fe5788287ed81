"""Helpers of the schema migration tests: each service's schema, building a database at an
older revision, and reading what a database holds."""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from services.campaign_svc.migrations import SCHEMA as CAMPAIGN
from services.delivery_svc.migrations import SCHEMA as DELIVERY
from services.kit.migrate import Schema
from services.segment_svc.migrations import SCHEMA as SEGMENT

SCHEMAS = {schema.service: schema for schema in (SEGMENT, CAMPAIGN, DELIVERY)}


def first_revision(schema: Schema) -> str:
    base = ScriptDirectory.from_config(schema.alembic_config()).get_base()
    assert base is not None
    return base


def head_revision(schema: Schema) -> str:
    head = ScriptDirectory.from_config(schema.alembic_config()).get_current_head()
    assert head is not None
    return head


async def upgrade_to(engine: AsyncEngine, schema: Schema, revision: str) -> None:
    """Builds the schema as `revision` left it, the way an older release would have."""

    def upgrade(connection: Connection) -> None:
        command.upgrade(schema.alembic_config(connection), revision)

    async with engine.begin() as connection:
        await connection.run_sync(upgrade)


async def revision_of(engine: AsyncEngine, schema: Schema) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(lambda sync: schema.migration_context(sync).get_current_revision())


async def describe(engine: AsyncEngine) -> dict[str, Any]:
    """Everything the database says about its tables except Alembic's version tables: columns
    with types, collations and defaults, keys, indexes; on SQLite also each table's DDL (which
    shows WITHOUT ROWID)."""
    async with engine.connect() as connection:
        return await connection.run_sync(_describe)


def _describe(connection: Connection) -> dict[str, Any]:
    inspector = inspect(connection)
    tables: dict[str, Any] = {}
    for name in sorted(inspector.get_table_names()):
        if name.startswith("alembic_version"):
            continue
        tables[name] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"], c.get("default"))
                        for c in inspector.get_columns(name)],
            "primary key": inspector.get_pk_constraint(name),
            "foreign keys": inspector.get_foreign_keys(name),
            "indexes": sorted((_comparable(index) for index in inspector.get_indexes(name)),
                              key=lambda index: str(index["name"])),
            "unique": inspector.get_unique_constraints(name),
        }
    if connection.dialect.name == "sqlite":
        # A table rebuilt by a batch ALTER keeps its name quoted in its DDL ("events"): same table.
        tables["sqlite_master"] = sorted(
            (type_, name, table, sql.replace(f'CREATE TABLE "{name}"', f"CREATE TABLE {name}") if sql else sql)
            for type_, name, table, sql in connection.exec_driver_sql(
                "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE tbl_name NOT LIKE 'alembic_version%'"))
    return tables


def _comparable(index: Any) -> Any:
    """An index as reflected, its dialect options (a partial index's WHERE) as text."""
    return {**index, "dialect_options": {k: str(v) for k, v in index.get("dialect_options", {}).items()}}
