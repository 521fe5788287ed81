"""Fixtures of the schema migration tests: each service's schema in turn, and engines on fresh
databases that are disposed after the test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from migrations.helpers import SCHEMAS
from services.kit.db import make_engine
from services.kit.migrate import Schema

EngineFactory = Callable[[str], Awaitable[AsyncEngine]]


@pytest.fixture(params=list(SCHEMAS))
def schema(request: pytest.FixtureRequest) -> Schema:
    return SCHEMAS[request.param]


@pytest.fixture
async def new_engine(new_db_url) -> AsyncIterator[EngineFactory]:
    """Factory of engines on fresh databases: `engine = await new_engine("a")`."""
    engines: list[AsyncEngine] = []

    async def make(name: str) -> AsyncEngine:
        engines.append(make_engine(await new_db_url(name)))
        return engines[-1]

    yield make
    for engine in engines:
        await engine.dispose()
