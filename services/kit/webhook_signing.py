"""Standard Webhooks signatures (standardwebhooks.com), shared by every POST Herald signs with
`HERALD_WEBHOOK_SECRET`: webhooks and `http` push devices.

`webhook-signature` is `v1,` + base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`, keyed by the
bytes the `whsec_` secret encodes; a receiver checks it and rejects stale timestamps (replays).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from services.kit.config import ConfigError

SECRET_PREFIX = "whsec_"


def webhook_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_…` secret; ConfigError naming HERALD_WEBHOOK_SECRET when malformed."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True) if secret.startswith(SECRET_PREFIX) else b""
    except (binascii.Error, ValueError):
        key = b""
    if len(key) < 24:
        raise ConfigError("HERALD_WEBHOOK_SECRET must be 'whsec_' followed by the base64 of a key of at least "
                          "24 bytes (unset, one is generated into the data dir)")
    return key


def signature_headers(key: bytes, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers of one attempt (`timestamp`: its Unix seconds)."""
    signed = b"%s.%d.%s" % (message_id.encode(), timestamp, body)
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return {"webhook-id": message_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": "v1," + base64.b64encode(digest).decode()}
