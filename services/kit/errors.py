"""Domain errors that handlers raise; the server interceptor maps them to gRPC statuses.

Each error becomes a `google.rpc.Status` whose details hold an `ErrorInfo` — `reason` names
the case (`services.kit.reasons`, each service's `reasons`), `domain` the service that answered
(`segment.herald`, set by the interceptor) — plus `BadRequest` field violations for
INVALID_ARGUMENT and a `RetryInfo` for RESOURCE_EXHAUSTED when a retry may succeed later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

from services.kit import reasons


def service_domain(service_name: str) -> str:
    """The `ErrorInfo.domain` of a service's errors: `segment` → `segment.herald`."""
    return f"{service_name}.herald"


@dataclass(frozen=True)
class FieldViolation:
    """One bad field: `field` is the request's own path (`user_ids[12]`, `message_template.text`)."""

    field: str
    description: str
    reason: str = reasons.INVALID_ARGUMENT


class HeraldError(Exception):
    """Base of the errors a client caused; `code` is the gRPC status they map to, `reason` the
    case a client may branch on."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, *, reason: str, metadata: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.metadata = dict(metadata or {})

    def details(self, domain: str) -> list:
        return [error_details_pb2.ErrorInfo(reason=self.reason, domain=domain, metadata=self.metadata)]

    def to_status(self, domain: str) -> status_pb2.Status:
        details = []
        for detail in self.details(domain):
            packed = any_pb2.Any()
            packed.Pack(detail)
            details.append(packed)
        return status_pb2.Status(code=self.code.value[0], message=self.message, details=details)


class InvalidArgument(HeraldError):
    """Bad input. Carries one or more field violations, each naming the request's field.

    `reason` is the case of `field` (INVALID_FILTER, TEMPLATE_INVALID, …); the error's own
    reason is the one its violations share, else INVALID_ARGUMENT.
    """

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, field: str | None = None, description: str | None = None, *,
                 reason: str = reasons.INVALID_ARGUMENT, violations: list[FieldViolation] | None = None):
        self.violations = list(violations or [])
        if field is not None:
            self.violations.insert(0, FieldViolation(field, description or "is invalid", reason))
        message = "; ".join(f"{v.field}: {v.description}" for v in self.violations) or "invalid argument"
        shared = {v.reason for v in self.violations}
        super().__init__(message, reason=shared.pop() if len(shared) == 1 else reasons.INVALID_ARGUMENT)

    def details(self, domain: str) -> list:
        return [*super().details(domain), error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description, reason=v.reason)
            for v in self.violations
        ])]


class Violations:
    """Collects field violations so a handler can report every bad field at once.

    >>> v = Violations(); v.check(bool(name), "name", "is required"); v.raise_if_any()
    """

    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def add(self, field: str, description: str, reason: str = reasons.INVALID_ARGUMENT) -> None:
        self.items.append(FieldViolation(field, description, reason))

    def check(self, ok: bool, field: str, description: str, reason: str = reasons.INVALID_ARGUMENT) -> bool:
        if not ok:
            self.add(field, description, reason)
        return ok

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidArgument(violations=self.items)

    def __bool__(self) -> bool:
        return bool(self.items)


class NotFound(HeraldError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(HeraldError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(HeraldError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class OutOfRange(HeraldError):
    """A position outside what is kept (an event sequence older than retention, or never given)."""

    code = grpc.StatusCode.OUT_OF_RANGE


class Unauthenticated(HeraldError):
    code = grpc.StatusCode.UNAUTHENTICATED


class Unavailable(HeraldError):
    code = grpc.StatusCode.UNAVAILABLE


class Unimplemented(HeraldError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Internal(HeraldError):
    """An unexpected failure, opaque to the client: its cause stays in the log."""

    code = grpc.StatusCode.INTERNAL


class ResourceExhausted(HeraldError):
    """Quota or rate exceeded; `retry_after_s` becomes a `google.rpc.RetryInfo` when given."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(self, message: str, *, reason: str, retry_after_s: float | None = None, **kwargs: Any):
        super().__init__(message, reason=reason, **kwargs)
        self.retry_after_s = retry_after_s

    def details(self, domain: str) -> list:
        details = super().details(domain)
        if self.retry_after_s is not None:
            delay = duration_pb2.Duration()
            delay.FromNanoseconds(int(self.retry_after_s * 1e9))
            details.append(error_details_pb2.RetryInfo(retry_delay=delay))
        return details
