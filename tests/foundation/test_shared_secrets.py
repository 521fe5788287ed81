"""With a PostgreSQL database, HERALD_API_SECRET and HERALD_WEBHOOK_SECRET must be set (DESIGN
§10.4): replicas on different hosts share the database but not a data dir, so a generated secret
cannot be shared. On SQLite the generated ones stay."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from conftest import PG_ADMIN_URL
from harness import DEADLINE_S, TEST_SECRET, TEST_WEBHOOK_SECRET
from services.kit.config import ConfigError, Settings
from services.kit.probes import free_port, wait_serving
from services.kit.server import EXIT_CANNOT_START

ROOT = Path(__file__).resolve().parents[2]
UNREACHABLE_PG = "postgresql+asyncpg://herald@127.0.0.1:9/herald"  # never connected to: refused before


def test_sqlite_generates_the_secrets_postgresql_requires_them(tmp_path):
    sqlite = Settings(data_dir=tmp_path)
    assert sqlite.with_secret().api_secret and sqlite.with_webhook_secret().webhook_secret.startswith("whsec_")

    shared = Settings(data_dir=tmp_path / "pg", delivery_db_url=UNREACHABLE_PG)  # any service's database
    with pytest.raises(ConfigError, match="^HERALD_API_SECRET and HERALD_WEBHOOK_SECRET must be set with a "
                                          "PostgreSQL database"):
        shared.with_secret()
    with pytest.raises(ConfigError, match="^HERALD_WEBHOOK_SECRET must be set"):
        Settings(data_dir=tmp_path / "pg", segment_db_url=UNREACHABLE_PG, api_secret="given").with_webhook_secret()
    assert not (tmp_path / "pg").exists()  # nothing generated
    given = Settings(segment_db_url=UNREACHABLE_PG, api_secret="given", webhook_secret=TEST_WEBHOOK_SECRET)
    assert given.require_shared_secrets().with_secret().with_webhook_secret() == given


def _env(tmp_path: Path, port: int, db_url: str, **secrets: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HERALD_API_SECRET", "HERALD_WEBHOOK_SECRET")}
    env.update(HERALD_SEGMENT_ADDR=f"127.0.0.1:{port}", HERALD_SEGMENT_DB_URL=db_url, HERALD_DATA_DIR=str(tmp_path),
               HERALD_SHUTDOWN_GRACE_S="1", **secrets)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "gen"), *filter(None, [env.get("PYTHONPATH")])])
    return env


async def _spawn(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "services.segment_svc", env=env, cwd=ROOT,
                                                stderr=asyncio.subprocess.PIPE)


@pytest.mark.parametrize(("given", "named"), [
    ({}, "HERALD_API_SECRET and HERALD_WEBHOOK_SECRET"),
    ({"HERALD_API_SECRET": TEST_SECRET}, "HERALD_WEBHOOK_SECRET"),
    ({"HERALD_WEBHOOK_SECRET": TEST_WEBHOOK_SECRET}, "HERALD_API_SECRET"),
], ids=["neither", "api-only", "webhook-only"])
async def test_a_service_on_postgresql_without_the_secrets_refuses_to_start_naming_them(tmp_path, given, named):
    process = await _spawn(_env(tmp_path, free_port(), UNREACHABLE_PG, **given))
    _, stderr = await asyncio.wait_for(process.communicate(), DEADLINE_S)
    assert process.returncode == EXIT_CANNOT_START, stderr.decode()
    [line] = stderr.decode().splitlines()  # one line, before anything starts
    said = json.loads(line)
    assert (said["msg"], said["service"]) == ("cannot start", "segment")
    assert said["cause"].startswith(f"{named} must be set with a PostgreSQL database"), said
    assert not (tmp_path / "api_secret").exists()


@pytest.mark.skipif(not PG_ADMIN_URL, reason="needs a PostgreSQL server (HERALD_TEST_DATABASE_URL)")
async def test_with_the_secrets_a_service_on_postgresql_starts(tmp_path, new_db_url):
    port = free_port()
    process = await _spawn(_env(tmp_path, port, await new_db_url("segment"), HERALD_API_SECRET=TEST_SECRET,
                                HERALD_WEBHOOK_SECRET=TEST_WEBHOOK_SECRET))
    try:
        await wait_serving(port, alive=lambda: process.returncode is None)
    finally:
        if process.returncode is None:
            process.terminate()
        _, stderr = await asyncio.wait_for(process.communicate(), DEADLINE_S)
    assert process.returncode == 0, stderr.decode()
    assert not (tmp_path / "api_secret").exists()
