"""Bearer tokens: HS256 JWTs signed with the API secret, claim `server: true`.

`sub` names the caller (used for per-caller limits); services calling each other use
`service:<name>`.
"""

from __future__ import annotations

import time

import jwt

from services.kit import reasons
from services.kit.errors import Unauthenticated

ALGORITHM = "HS256"


def make_token(secret: str, subject: str | None = None, *, ttl_s: float | None = None) -> str:
    claims: dict = {"server": True, "iat": int(time.time())}
    if subject:
        claims["sub"] = subject
    if ttl_s:
        claims["exp"] = int(time.time() + ttl_s)
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def service_token(secret: str, service: str) -> str:
    return make_token(secret, f"service:{service}")


def verify_authorization(header: str | None, secret: str) -> dict:
    """Checks an `authorization` header value; returns the claims or raises Unauthenticated."""
    if not header:
        raise Unauthenticated("missing authorization metadata: send 'authorization: Bearer <token>'",
                              reason=reasons.TOKEN_MISSING)
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("authorization must be 'Bearer <token>'", reason=reasons.TOKEN_INVALID)
    try:
        claims = jwt.decode(token.strip(), secret, algorithms=[ALGORITHM], options={"require": []})
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("token expired", reason=reasons.TOKEN_EXPIRED) from None
    except jwt.InvalidTokenError as exc:
        raise Unauthenticated(f"invalid token: {exc.__class__.__name__}", reason=reasons.TOKEN_INVALID) from None
    if claims.get("server") is not True:
        raise Unauthenticated("token lacks the claim server: true", reason=reasons.TOKEN_INVALID)
    return claims
