"""Configuration: every `HERALD_*` variable, read once into a frozen `Settings`.

The API secret, when `HERALD_API_SECRET` is unset, is generated into `<data dir>/api_secret`
on first use, so services that share a data dir share the secret. The webhook signing secret
(`webhook_secret`) and the VAPID key of web push (`vapid_private_key`) follow the same rule.
With a PostgreSQL database (any service's), the API and webhook secrets are never generated:
replicas on different hosts share the database but not a data dir, so each would generate its
own and refuse the others' tokens and signatures (DESIGN §10.4); they must be set.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from pathlib import Path

from services.kit import event_types
from services.kit.limits import DEFAULT_RECIPIENT_BATCH

SERVICES = ("segment", "campaign", "delivery")
# One shard on SQLite (one replica: a shard is a reader, and nothing to share it with); on
# PostgreSQL four, which spread over 2 or 4 delivery replicas evenly (3: two, one and one).
DEFAULT_DISPATCH_SHARDS = {"sqlite": 1, "postgresql": 4}
MAX_DISPATCH_SHARDS = 64
# The secrets every replica must hold the same of: variable → setting.
SHARED_SECRETS = {"HERALD_API_SECRET": "api_secret", "HERALD_WEBHOOK_SECRET": "webhook_secret"}


@dataclass(frozen=True)
class Settings:
    segment_addr: str = "127.0.0.1:50051"
    campaign_addr: str = "127.0.0.1:50052"
    delivery_addr: str = "127.0.0.1:50053"
    # What callers dial (any gRPC target: `dns:///host:port`, `ipv4:a:p,b:p`); empty = the address.
    segment_target: str = ""
    campaign_target: str = ""
    delivery_target: str = ""
    # Where each service serves Prometheus metrics (`/metrics`): host:port, or "off".
    segment_metrics_addr: str = "127.0.0.1:9451"
    campaign_metrics_addr: str = "127.0.0.1:9452"
    delivery_metrics_addr: str = "127.0.0.1:9453"
    data_dir: Path = Path("var")
    segment_db_url: str = ""
    campaign_db_url: str = ""
    delivery_db_url: str = ""
    api_key: str = "herald"
    api_secret: str = ""
    webhook_url: str = ""
    webhook_max_attempts: int = 5
    webhook_backoff_s: float = 0.5
    webhook_backoff_max_s: float = 30.0
    webhook_timeout_s: float = 5.0
    webhook_concurrency: int = 16  # POSTs in flight at once
    webhook_event_types: tuple[str, ...] = ()  # the event types to post; empty = all
    shutdown_grace_s: float = 10.0
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_ca_file: str = ""
    monthly_message_capacity: int = 0  # 0 = unlimited
    max_send_rate: float = 0.0  # recipients per second; 0 = unlimited
    caller_rate_limit: float = 0.0  # calls per second per token `sub`; 0 = unlimited
    delivery_batch_size: int = DEFAULT_RECIPIENT_BATCH
    event_retention_h: float = 24.0
    # PostgreSQL replicas: a delivery or a destination's dispatch held by a replica that stopped
    # renewing it (killed) passes to another after this long (DESIGN §10.4).
    lease_s: float = 10.0
    # Each destination's event log is dispatched in this many shards, which replicas share;
    # 0: the database's default (DEFAULT_DISPATCH_SHARDS).
    dispatch_shards: int = 0
    dead_letter_retention_h: float = 168.0
    log_level: str = "INFO"
    webhook_secret: str = ""  # "whsec_" + base64 key: Standard Webhooks signatures (webhooks, http push)
    vapid_private_key: str = ""  # raw 32-byte P-256 key, base64url: signs web push requests (VAPID)
    vapid_subject: str = "mailto:herald@localhost"  # the VAPID `sub` claim: a mailto: or https: contact
    push_allow_private: bool = False  # allow http and private/loopback push endpoints (tests, on-premise)

    def db_url(self, service: str) -> str:
        """The service's database URL: its own variable, else a SQLite file in the data dir."""
        explicit = getattr(self, f"{service}_db_url")
        if explicit:
            return explicit
        return f"sqlite+aiosqlite:///{(self.data_dir / f'{service}.db').resolve()}"

    def dispatch_shard_count(self) -> int:
        """HERALD_DISPATCH_SHARDS, else 1 on SQLite (one replica) and 4 on PostgreSQL."""
        if self.dispatch_shards:
            return self.dispatch_shards
        return DEFAULT_DISPATCH_SHARDS["sqlite" if self.db_url("delivery").startswith("sqlite") else "postgresql"]

    def addr(self, service: str) -> str:
        return getattr(self, f"{service}_addr")

    def metrics_addr(self, service: str) -> str | None:
        """Where `service` serves its metrics; None when they are off."""
        addr: str = getattr(self, f"{service}_metrics_addr")
        return None if addr == METRICS_OFF else addr

    def target(self, service: str) -> str:
        """What a caller dials to reach `service`: its target, else its address."""
        return getattr(self, f"{service}_target") or self.addr(service)

    def shares_database(self) -> bool:
        """Whether a service's database is one that replicas on several hosts may share (any but
        SQLite: PostgreSQL)."""
        return any(not self.db_url(service).startswith("sqlite") for service in SERVICES)

    def require_shared_secrets(self) -> "Settings":
        """Returns these settings, or raises ConfigError naming the secrets that replicas must
        share and that are unset, when the database is shared (PostgreSQL)."""
        missing = [name for name, attr in SHARED_SECRETS.items() if not getattr(self, attr)]
        if missing and self.shares_database():
            raise ConfigError(f"{' and '.join(missing)} must be set with a PostgreSQL database: replicas on "
                              "different hosts cannot share a generated secret")
        return self

    def with_secret(self) -> "Settings":
        """Returns settings whose api_secret is set, generating it into the data dir if needed
        (never with a PostgreSQL database: ConfigError)."""
        if self.api_secret:
            return self
        self.require_shared_secrets()
        return replace(self, api_secret=load_or_create_secret(self.data_dir))

    def with_existing_secret(self) -> "Settings":
        """Returns settings whose api_secret is the one in force (`HERALD_API_SECRET`, else the
        data dir's file); never generates one, since tokens signed with a new secret would be
        refused by services already running with theirs."""
        if self.api_secret:
            return self
        path = (Path(self.data_dir) / API_SECRET_FILE).resolve()
        if not path.exists():
            raise ConfigError(f"no API secret: HERALD_API_SECRET is unset and {path} does not exist "
                              "(pass the --data-dir that `herald serve` uses, or set HERALD_API_SECRET)")
        return replace(self, api_secret=_read_secret(path))

    def with_webhook_secret(self) -> "Settings":
        """Returns settings whose webhook_secret is set, generating it into the data dir if needed
        (never with a PostgreSQL database: ConfigError)."""
        if self.webhook_secret:
            return self
        self.require_shared_secrets()
        return replace(self, webhook_secret=load_or_create_secret(self.data_dir, WEBHOOK_SECRET_FILE,
                                                                  new_webhook_secret))

    def with_vapid_key(self) -> "Settings":
        """Returns settings whose vapid_private_key is set, generating it into the data dir if needed."""
        if self.vapid_private_key:
            return self
        return replace(self, vapid_private_key=load_or_create_secret(self.data_dir, VAPID_KEY_FILE, new_vapid_key))


def _flag(raw: str) -> bool:
    """A yes/no variable: 1/true/yes/on or 0/false/no/off."""
    word = raw.strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


METRICS_OFF = "off"


def split_host_port(addr: str) -> tuple[str, int]:
    """`127.0.0.1:9451`, `[::1]:9451`, `0.0.0.0:0` → (host, port); ValueError otherwise."""
    host, _, port = addr.rpartition(":")
    if not host.strip("[]") or not port.isdigit() or int(port) > 65535:
        raise ValueError(addr)
    return host.strip("[]"), int(port)


def _metrics_addr(raw: str) -> str:
    """`host:port` (port 0: any free port) or `off`."""
    if raw.strip().lower() == METRICS_OFF:
        return METRICS_OFF
    split_host_port(raw.strip())
    return raw.strip()


def _shard_count(raw: str) -> int:
    """A whole number from 1 to MAX_DISPATCH_SHARDS."""
    count = int(raw)
    if not 1 <= count <= MAX_DISPATCH_SHARDS:
        raise ValueError(raw)
    return count


def _event_types(raw: str) -> tuple[str, ...]:
    """A comma-separated list of event types ("campaign.completed, message.new"); a name that is
    not an event type is refused (a typo would otherwise silently filter everything out)."""
    names = tuple(name for name in (part.strip() for part in raw.split(",")) if name)
    if not set(names) <= set(event_types.ALL):
        raise ValueError(raw)
    return names


_VARIABLES: dict[str, tuple[str, Callable[[str], Any]]] = {
    "HERALD_SEGMENT_ADDR": ("segment_addr", str),
    "HERALD_CAMPAIGN_ADDR": ("campaign_addr", str),
    "HERALD_DELIVERY_ADDR": ("delivery_addr", str),
    "HERALD_SEGMENT_TARGET": ("segment_target", str),
    "HERALD_CAMPAIGN_TARGET": ("campaign_target", str),
    "HERALD_DELIVERY_TARGET": ("delivery_target", str),
    "HERALD_SEGMENT_METRICS_ADDR": ("segment_metrics_addr", _metrics_addr),
    "HERALD_CAMPAIGN_METRICS_ADDR": ("campaign_metrics_addr", _metrics_addr),
    "HERALD_DELIVERY_METRICS_ADDR": ("delivery_metrics_addr", _metrics_addr),
    "HERALD_DATA_DIR": ("data_dir", Path),
    "HERALD_SEGMENT_DB_URL": ("segment_db_url", str),
    "HERALD_CAMPAIGN_DB_URL": ("campaign_db_url", str),
    "HERALD_DELIVERY_DB_URL": ("delivery_db_url", str),
    "HERALD_API_KEY": ("api_key", str),
    "HERALD_API_SECRET": ("api_secret", str),
    "HERALD_WEBHOOK_URL": ("webhook_url", str),
    "HERALD_WEBHOOK_MAX_ATTEMPTS": ("webhook_max_attempts", int),
    "HERALD_WEBHOOK_BACKOFF_S": ("webhook_backoff_s", float),
    "HERALD_WEBHOOK_BACKOFF_MAX_S": ("webhook_backoff_max_s", float),
    "HERALD_WEBHOOK_TIMEOUT_S": ("webhook_timeout_s", float),
    "HERALD_WEBHOOK_CONCURRENCY": ("webhook_concurrency", int),
    "HERALD_WEBHOOK_EVENT_TYPES": ("webhook_event_types", _event_types),
    "HERALD_SHUTDOWN_GRACE_S": ("shutdown_grace_s", float),
    "HERALD_TLS_CERT_FILE": ("tls_cert_file", str),
    "HERALD_TLS_KEY_FILE": ("tls_key_file", str),
    "HERALD_TLS_CA_FILE": ("tls_ca_file", str),
    "HERALD_MONTHLY_MESSAGE_CAPACITY": ("monthly_message_capacity", int),
    "HERALD_MAX_SEND_RATE": ("max_send_rate", float),
    "HERALD_CALLER_RATE_LIMIT": ("caller_rate_limit", float),
    "HERALD_DELIVERY_BATCH_SIZE": ("delivery_batch_size", int),
    "HERALD_EVENT_RETENTION_H": ("event_retention_h", float),
    "HERALD_LEASE_S": ("lease_s", float),
    "HERALD_DISPATCH_SHARDS": ("dispatch_shards", _shard_count),
    "HERALD_DEAD_LETTER_RETENTION_H": ("dead_letter_retention_h", float),
    "HERALD_LOG_LEVEL": ("log_level", str),
    "HERALD_WEBHOOK_SECRET": ("webhook_secret", str),
    "HERALD_VAPID_PRIVATE_KEY": ("vapid_private_key", str),
    "HERALD_VAPID_SUBJECT": ("vapid_subject", str),
    "HERALD_PUSH_ALLOW_PRIVATE": ("push_allow_private", _flag),
}
_KIND_NAMES: dict[Callable[[str], Any], str] = {_flag: "flag (1/0, true/false, yes/no, on/off)",
                                                 _metrics_addr: "host:port, or off",
                                                 _shard_count: f"whole number from 1 to {MAX_DISPATCH_SHARDS}",
                                                 _event_types: "comma-separated list of event types ("
                                                 + ", ".join(event_types.ALL) + ")"}


class ConfigError(ValueError):
    """A HERALD_* variable holds a value of the wrong type."""


def settings_from_env(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Reads the HERALD_* variables (unset or empty ones keep their defaults)."""
    env = os.environ if env is None else env
    values: dict = {}
    for name, (attr, kind) in _VARIABLES.items():
        raw = env.get(name, "")
        if raw == "":
            continue
        try:
            values[attr] = kind(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a valid {_KIND_NAMES.get(kind, kind.__name__)}") from None
    values.update(overrides)
    return Settings(**values)


API_SECRET_FILE = "api_secret"
WEBHOOK_SECRET_FILE = "webhook_secret"
VAPID_KEY_FILE = "vapid_private_key"
# The order of the P-256 group: a private key is an integer in [1, order).
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _new_api_secret() -> str:
    return secrets.token_hex(32)


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: `whsec_` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def new_vapid_key() -> str:
    """A raw P-256 private key in base64url without padding, as web-push tools print it."""
    while True:
        raw = secrets.token_bytes(32)
        if 0 < int.from_bytes(raw, "big") < P256_ORDER:
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def load_or_create_secret(data_dir: Path, name: str = API_SECRET_FILE,
                          make: Callable[[], str] = _new_api_secret) -> str:
    """Reads `<data_dir>/<name>`, creating it with `make()` atomically (first writer wins) when missing."""
    path = Path(data_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_secret(path)
    with os.fdopen(fd, "w") as f:
        f.write(make())
    return _read_secret(path)


def _read_secret(path: Path) -> str:
    # A concurrent creator may not have written yet: wait briefly for the content.
    import time

    for _ in range(100):
        text = path.read_text().strip()
        if text:
            return text
        time.sleep(0.01)
    raise ConfigError(f"{path} is empty")
