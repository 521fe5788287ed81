"""`herald migrate` brings each service's database to head and prints its revision; replicas
starting together (here: processes migrating the same databases at once) migrate once."""

from __future__ import annotations

import asyncio
import os
import sys

from migrations.helpers import SCHEMAS, head_revision, revision_of
from services.kit.db import make_engine

DEADLINE_S = 120


async def herald_migrate(*args: str, env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", "migrate", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(process.communicate(), DEADLINE_S)
    except TimeoutError:
        process.kill()
        out, _ = await process.communicate()
        raise AssertionError(f"herald migrate still running after {DEADLINE_S} s; it printed: {out.decode()}")
    assert process.returncode is not None
    return process.returncode, out.decode()


async def database_env(new_db_url) -> dict[str, str]:
    urls = {f"HERALD_{service.upper()}_DB_URL": await new_db_url(service) for service in SCHEMAS}
    return dict(os.environ, **urls)


async def test_processes_migrating_together_all_reach_head(new_db_url, tmp_path):
    env = await database_env(new_db_url)
    runs = await asyncio.gather(*(herald_migrate("--data-dir", str(tmp_path), env=env) for _ in range(3)))
    expected = "".join(f"{service}: {head_revision(schema)}\n" for service, schema in SCHEMAS.items())
    assert runs == [(0, expected)] * 3


async def test_one_service_migrates_alone(new_db_url, tmp_path):
    env = await database_env(new_db_url)
    code, out = await herald_migrate("--service", "campaign", env=env)
    assert (code, out) == (0, f"campaign: {head_revision(SCHEMAS['campaign'])}\n")
    for service, schema in SCHEMAS.items():
        engine = make_engine(env[f"HERALD_{service.upper()}_DB_URL"])
        try:
            assert await revision_of(engine, schema) == (head_revision(schema) if service == "campaign" else None)
        finally:
            await engine.dispose()
