"""The VAPID key of web push (RFC 8292): identifies Herald to push services, which accept for a
subscription only requests signed with the key the browser subscribed with (GetPushConfig
hands its public half to browsers).

`HERALD_VAPID_PRIVATE_KEY` is the raw 32-byte P-256 private key in base64url, as web-push tools
print it (`vapid --gen` then `vapid --applicationServerKey`, `web-push generate-vapid-keys`);
unset, one is generated into the data dir (kit/config).
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid02, VapidException

from services.kit.config import P256_ORDER, ConfigError

# A signed token is valid this long (RFC 8292 allows at most 24 h) ...
TOKEN_LIFETIME_S = 12 * 3600
# ... and reused for this long, so one push service sees one signature an hour, not one a push.
TOKEN_REUSE_S = 3600
# Push services Herald holds tokens for at once (one per scheme://host:port); past it, all are dropped.
MAX_AUDIENCES = 1024


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class VapidKey:
    """Signs the `Authorization: vapid t=<JWT>, k=<public key>` header of web push requests; the
    JWT's `sub` is HERALD_VAPID_SUBJECT, a contact for the push services (mailto: or https:)."""

    def __init__(self, private_key: str, subject: str, *, clock: Callable[[], float] = time.time) -> None:
        try:
            raw = base64.urlsafe_b64decode(private_key + "=" * (-len(private_key) % 4))
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 32 or not 0 < int.from_bytes(raw, "big") < P256_ORDER:
            raise ConfigError("HERALD_VAPID_PRIVATE_KEY must be a raw P-256 private key: 32 bytes in base64url "
                              "(unset, one is generated into the data dir)")
        self._vapid = Vapid02.from_raw(private_key.encode())
        self.subject = subject
        try:
            self._vapid.sign({"aud": "https://push.example", "sub": subject})  # py_vapid's own rule for `sub`
        except VapidException:
            raise ConfigError(f"HERALD_VAPID_SUBJECT={subject!r} must be a mailto: address or an https URL") from None
        self.public_key = _b64url(self._vapid.public_key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))
        self._clock = clock
        self._tokens: dict[str, tuple[str, float]] = {}  # audience → (header, signed at)

    def authorization(self, endpoint: str) -> str:
        """The Authorization header for a push to `endpoint`; its audience is the endpoint's origin.
        VapidException when that origin cannot be an audience (an IPv6 address)."""
        parts = urlsplit(endpoint)
        audience = f"{parts.scheme}://{parts.netloc}"
        now = self._clock()
        cached = self._tokens.get(audience)
        if cached is not None and now - cached[1] < TOKEN_REUSE_S:
            return cached[0]
        claims = {"aud": audience, "sub": self.subject, "exp": int(now) + TOKEN_LIFETIME_S}
        header = self._vapid.sign(claims)["Authorization"]
        if len(self._tokens) >= MAX_AUDIENCES:
            self._tokens.clear()
        self._tokens[audience] = (header, now)
        return header
