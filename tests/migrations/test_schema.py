"""Each service's migrations build exactly the schema its models describe, adopt a database
made before migrations existed, and leave other services' tables in a shared database alone."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from migrations.helpers import SCHEMAS, describe, first_revision, head_revision, revision_of, upgrade_to
from services.kit.db import create_tables
from services.kit.migrate import Schema, migrate


async def differences(engine: AsyncEngine, schema: Schema) -> list:
    """What autogenerate would change to make the database match the service's models."""

    def compare(connection: Connection) -> list:
        return compare_metadata(schema.migration_context(connection), schema.metadata)

    async with engine.connect() as connection:
        return await connection.run_sync(compare)


async def test_head_matches_the_models(schema: Schema, new_engine):
    engine = await new_engine(schema.service)
    assert await migrate(engine, schema) == head_revision(schema)
    assert await differences(engine, schema) == []


async def test_head_is_what_create_all_makes(schema: Schema, new_engine):
    """Stricter than compare_metadata: collations, foreign key actions, SQLite's WITHOUT ROWID."""
    migrated, created = await new_engine("migrated"), await new_engine("created")
    await migrate(migrated, schema)
    await create_tables(created, schema.metadata)
    assert await describe(migrated) == await describe(created)


async def test_migrating_again_changes_nothing(schema: Schema, new_engine):
    engine = await new_engine(schema.service)
    await migrate(engine, schema)
    before = await describe(engine)
    assert await migrate(engine, schema) == head_revision(schema)
    assert await describe(engine) == before


async def test_a_database_made_before_migrations_is_adopted(schema: Schema, new_engine):
    # The release before migrations made the first revision's tables with create_all and
    # kept no version (test_head_is_what_create_all_makes shows the two are the same today).
    engine = await new_engine(schema.service)
    await upgrade_to(engine, schema, first_revision(schema))
    async with engine.begin() as connection:
        await connection.execute(text(f"DROP TABLE {schema.version_table}"))
    assert await revision_of(engine, schema) is None

    assert await migrate(engine, schema) == head_revision(schema)
    assert await revision_of(engine, schema) == head_revision(schema)


async def test_a_partial_schema_without_a_version_is_refused(schema: Schema, new_engine):
    engine = await new_engine(schema.service)
    lone_table = sorted(schema.first_revision_tables)[0]
    async with engine.begin() as connection:
        await connection.run_sync(schema.metadata.tables[lone_table].create)
    with pytest.raises(RuntimeError, match=f"{schema.service} database has some of its tables but not"):
        await migrate(engine, schema)
    assert await revision_of(engine, schema) is None


async def test_services_sharing_a_database_keep_their_own_versions(new_engine):
    engine = await new_engine("shared")
    for schema in SCHEMAS.values():
        assert await migrate(engine, schema) == head_revision(schema)
    for schema in SCHEMAS.values():
        assert await revision_of(engine, schema) == head_revision(schema)
        assert await differences(engine, schema) == []  # another service's tables are not its concern


async def test_sqlite_connections_keep_foreign_keys_on_after_migrating(schema: Schema, new_engine):
    engine = await new_engine(schema.service)
    if engine.dialect.name != "sqlite":
        pytest.skip("foreign keys are switched off only on SQLite")
    await migrate(engine, schema)
    async with engine.connect() as connection:
        assert (await connection.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
