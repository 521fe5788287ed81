"""Domain errors that handlers raise; the server interceptor maps them to gRPC statuses.

Each error becomes a `google.rpc.Status` with details: `BadRequest` (field violations) for
INVALID_ARGUMENT, `ErrorInfo` for the others, `RetryInfo` for RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

ERROR_DOMAIN = "herald"


@dataclass(frozen=True)
class FieldViolation:
    """One bad field: `field` is the request's own path (`user_ids[12]`, `message_template.text`)."""

    field: str
    description: str


class HeraldError(Exception):
    """Base of the errors a client caused; `code` is the gRPC status they map to."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    reason: str = "INTERNAL"

    def __init__(self, message: str, *, reason: str | None = None, metadata: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        if reason:
            self.reason = reason
        self.metadata = dict(metadata or {})

    def details(self) -> list:
        return [error_details_pb2.ErrorInfo(reason=self.reason, domain=ERROR_DOMAIN, metadata=self.metadata)]

    def to_status(self) -> status_pb2.Status:
        details = []
        for detail in self.details():
            packed = any_pb2.Any()
            packed.Pack(detail)
            details.append(packed)
        return status_pb2.Status(code=self.code.value[0], message=self.message, details=details)


class InvalidArgument(HeraldError):
    """Bad input. Carries one or more field violations, each naming the request's field."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "INVALID_ARGUMENT"

    def __init__(self, field: str | None = None, description: str | None = None, *,
                 violations: list[FieldViolation] | None = None):
        self.violations = list(violations or [])
        if field is not None:
            self.violations.insert(0, FieldViolation(field, description or "is invalid"))
        message = "; ".join(f"{v.field}: {v.description}" for v in self.violations) or "invalid argument"
        super().__init__(message)

    def details(self) -> list:
        return [error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in self.violations
        ])]


class Violations:
    """Collects field violations so a handler can report every bad field at once.

    >>> v = Violations(); v.check(bool(name), "name", "is required"); v.raise_if_any()
    """

    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self.items.append(FieldViolation(field, description))

    def check(self, ok: bool, field: str, description: str) -> bool:
        if not ok:
            self.add(field, description)
        return ok

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidArgument(violations=self.items)

    def __bool__(self) -> bool:
        return bool(self.items)


class NotFound(HeraldError):
    code = grpc.StatusCode.NOT_FOUND
    reason = "NOT_FOUND"


class AlreadyExists(HeraldError):
    code = grpc.StatusCode.ALREADY_EXISTS
    reason = "ALREADY_EXISTS"


class FailedPrecondition(HeraldError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "FAILED_PRECONDITION"


class Unauthenticated(HeraldError):
    code = grpc.StatusCode.UNAUTHENTICATED
    reason = "UNAUTHENTICATED"


class Unavailable(HeraldError):
    code = grpc.StatusCode.UNAVAILABLE
    reason = "UNAVAILABLE"


class ResourceExhausted(HeraldError):
    """Quota or rate exceeded; `retry_after_s` becomes a `google.rpc.RetryInfo` when given."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "RESOURCE_EXHAUSTED"

    def __init__(self, message: str, *, retry_after_s: float | None = None, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.retry_after_s = retry_after_s

    def details(self) -> list:
        details = super().details()
        if self.retry_after_s is not None:
            delay = duration_pb2.Duration()
            delay.FromNanoseconds(int(self.retry_after_s * 1e9))
            details.append(error_details_pb2.RetryInfo(retry_delay=delay))
        return details


def internal_status(message: str = "internal error") -> status_pb2.Status:
    """The opaque status an unexpected exception becomes (its text stays in the log)."""
    return status_pb2.Status(code=code_pb2.INTERNAL, message=message)
