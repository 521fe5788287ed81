"""`HeraldClient.from_env`: the same HERALD_* variables as the services — each service's address
or dial target, and the API secret from HERALD_API_SECRET or the data dir's `api_secret`."""

from __future__ import annotations

import os

import pytest

from harness import TEST_SECRET
from services.client import HeraldClient, HeraldSyncClient
from services.kit.config import ConfigError

from client.conftest import users


@pytest.fixture
def env(monkeypatch):
    """No HERALD_* variable from outside the test; `env(NAME=value, …)` sets some."""
    for name in [n for n in os.environ if n.startswith("HERALD_")]:
        monkeypatch.delenv(name)

    def set_env(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)
    return set_env


async def test_from_env_dials_the_addresses_with_the_secret(system_and_client, env):
    system, herald = system_and_client
    await users(herald, "ann")
    settings = system.settings
    env(HERALD_SEGMENT_ADDR=settings.segment_addr, HERALD_CAMPAIGN_ADDR=settings.campaign_addr,
        HERALD_DELIVERY_ADDR=settings.delivery_addr, HERALD_API_SECRET=TEST_SECRET)
    async with HeraldClient.from_env(timeout=20) as from_env:
        assert from_env.timeout == 20
        assert [u.id for u in (await from_env.get_users(["ann"])).users] == ["ann"]


async def test_from_env_reads_the_data_dirs_secret_and_prefers_targets(system_and_client, env, tmp_path):
    system, herald = system_and_client
    await users(herald, "ann")
    data_dir = tmp_path / "elsewhere"
    data_dir.mkdir()
    (data_dir / "api_secret").write_text(TEST_SECRET + "\n")
    port = system.settings.segment_addr.rsplit(":", 1)[1]
    env(HERALD_DATA_DIR=str(data_dir), HERALD_SEGMENT_ADDR="127.0.0.1:1",  # the target wins over the address
        HERALD_SEGMENT_TARGET=f"ipv4:127.0.0.1:{port}")
    async with HeraldClient.from_env() as from_env:
        assert await from_env.count_recipients(user_ids=["ann"]) == 1


def test_without_a_secret_no_client_is_made(env, tmp_path):
    env(HERALD_DATA_DIR=str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match="no API secret"):
        HeraldClient.from_env()
    with pytest.raises(ConfigError, match="no API secret"):
        HeraldSyncClient.from_env()
    assert not (tmp_path / "empty" / "api_secret").exists()  # and none was made
