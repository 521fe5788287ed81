"""Settings come from HERALD_* variables; the API secret is generated once per data dir."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from services.kit.auth import make_token, verify_authorization
from services.kit.config import ConfigError, Settings, load_or_create_secret, settings_from_env
from services.kit.errors import Unauthenticated


def test_defaults_match_the_design():
    settings = settings_from_env({})
    assert (settings.segment_addr, settings.campaign_addr, settings.delivery_addr) == (
        "127.0.0.1:50051", "127.0.0.1:50052", "127.0.0.1:50053")
    assert settings.shutdown_grace_s == 10
    assert settings.db_url("campaign") == f"sqlite+aiosqlite:///{Path('var/campaign.db').resolve()}"


def test_variables_override_defaults_and_empty_ones_do_not():
    settings = settings_from_env({"HERALD_CAMPAIGN_ADDR": "0.0.0.0:9", "HERALD_SHUTDOWN_GRACE_S": "2.5",
                                  "HERALD_DELIVERY_DB_URL": "postgresql+asyncpg://x/y", "HERALD_WEBHOOK_URL": ""})
    assert settings.campaign_addr == "0.0.0.0:9"
    assert settings.shutdown_grace_s == 2.5
    assert settings.db_url("delivery") == "postgresql+asyncpg://x/y"
    assert settings.webhook_url == ""


def test_a_malformed_number_names_the_variable():
    with pytest.raises(ConfigError, match="HERALD_WEBHOOK_MAX_ATTEMPTS"):
        settings_from_env({"HERALD_WEBHOOK_MAX_ATTEMPTS": "many"})


def test_dispatch_shards_default_by_the_delivery_database_and_are_checked():
    assert settings_from_env({}).dispatch_shard_count() == 1  # SQLite: one replica
    postgres = {"HERALD_DELIVERY_DB_URL": "postgresql+asyncpg://x/y"}
    assert settings_from_env(postgres).dispatch_shard_count() == 4
    assert settings_from_env({**postgres, "HERALD_DISPATCH_SHARDS": "6"}).dispatch_shard_count() == 6
    for wrong in ("0", "65", "two"):
        with pytest.raises(ConfigError, match="HERALD_DISPATCH_SHARDS.*whole number from 1 to 64"):
            settings_from_env({"HERALD_DISPATCH_SHARDS": wrong})


def test_the_secret_is_generated_once_and_shared_through_the_data_dir(tmp_path):
    first = load_or_create_secret(tmp_path)
    assert len(first) == 64
    assert load_or_create_secret(tmp_path) == first
    assert Settings(data_dir=tmp_path).with_secret().api_secret == first
    assert Settings(data_dir=tmp_path, api_secret="given").with_secret().api_secret == "given"


def test_tokens_verify_only_with_their_secret():
    secret = "s" * 40
    claims = verify_authorization("Bearer " + make_token(secret, "service:campaign"), secret)
    assert claims["sub"] == "service:campaign" and claims["server"] is True
    with pytest.raises(Unauthenticated):
        verify_authorization("Bearer " + make_token("t" * 40), secret)
    with pytest.raises(Unauthenticated, match="expired"):
        verify_authorization("Bearer " + make_token(secret, ttl_s=-10), secret)


def test_push_secrets_are_generated_once_into_the_data_dir_unless_given(tmp_path):
    settings = Settings(data_dir=tmp_path)
    webhook = settings.with_webhook_secret().webhook_secret
    assert webhook.startswith("whsec_") and len(base64.b64decode(webhook.removeprefix("whsec_"))) == 32
    assert settings.with_webhook_secret().webhook_secret == webhook == (tmp_path / "webhook_secret").read_text()
    vapid = settings.with_vapid_key().vapid_private_key
    assert len(base64.urlsafe_b64decode(vapid + "=")) == 32 and "=" not in vapid
    assert settings.with_vapid_key().vapid_private_key == vapid
    given = Settings(data_dir=tmp_path, webhook_secret="whsec_given", vapid_private_key="given")
    assert (given.with_webhook_secret().webhook_secret, given.with_vapid_key().vapid_private_key) == (
        "whsec_given", "given")


def test_push_allow_private_is_a_flag():
    assert settings_from_env({}).push_allow_private is False
    assert settings_from_env({"HERALD_PUSH_ALLOW_PRIVATE": "1"}).push_allow_private is True
    assert settings_from_env({"HERALD_PUSH_ALLOW_PRIVATE": "off"}).push_allow_private is False
    with pytest.raises(ConfigError, match="HERALD_PUSH_ALLOW_PRIVATE"):
        settings_from_env({"HERALD_PUSH_ALLOW_PRIVATE": "maybe"})


def test_webhook_event_types_is_a_comma_separated_list_and_empty_means_all():
    assert settings_from_env({}).webhook_event_types == ()
    assert settings_from_env({"HERALD_WEBHOOK_EVENT_TYPES": ""}).webhook_event_types == ()
    settings = settings_from_env({"HERALD_WEBHOOK_EVENT_TYPES": " campaign.completed,message.new ,,"})
    assert settings.webhook_event_types == ("campaign.completed", "message.new")
    assert (settings.webhook_concurrency, settings.dead_letter_retention_h) == (16, 168)


def test_a_webhook_event_type_that_does_not_exist_is_refused_with_the_list_of_those_that_do():
    with pytest.raises(ConfigError, match="campaign.complete'.*campaign.completed"):
        settings_from_env({"HERALD_WEBHOOK_EVENT_TYPES": "campaign.complete"})


def test_a_service_is_dialled_at_its_target_else_at_its_address():
    settings = settings_from_env({"HERALD_SEGMENT_TARGET": "dns:///segment.internal:50051"})
    assert settings.target("segment") == "dns:///segment.internal:50051"
    assert settings.target("campaign") == settings.campaign_addr == "127.0.0.1:50052"


def test_metrics_serve_on_the_loopback_ports_of_the_design_unless_off():
    settings = settings_from_env({})
    assert [settings.metrics_addr(name) for name in ("segment", "campaign", "delivery")] == [
        "127.0.0.1:9451", "127.0.0.1:9452", "127.0.0.1:9453"]
    settings = settings_from_env({"HERALD_DELIVERY_METRICS_ADDR": "OFF", "HERALD_SEGMENT_METRICS_ADDR": "0.0.0.0:0",
                                  "HERALD_CAMPAIGN_METRICS_ADDR": "[::1]:9999"})
    assert settings.metrics_addr("delivery") is None
    assert (settings.metrics_addr("segment"), settings.metrics_addr("campaign")) == ("0.0.0.0:0", "[::1]:9999")
    for wrong in ("9452", "localhost", "127.0.0.1:http", "127.0.0.1:70000"):
        with pytest.raises(ConfigError, match="HERALD_CAMPAIGN_METRICS_ADDR.*host:port, or off"):
            settings_from_env({"HERALD_CAMPAIGN_METRICS_ADDR": wrong})
