"""The one exception family the client raises: every failed call is a `HeraldError` that keeps the
status code, the `google.rpc.ErrorInfo` reason and domain, the `BadRequest` field violations and
the `RetryInfo` delay; a subclass per status code lets callers catch what they handle."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass(frozen=True)
class FieldViolation:
    field: str  # the request's own path: `user_ids[12]`, `message_template.text`
    description: str
    reason: str = ""


class HeraldError(Exception):
    """A call that failed. `str(error)` is one readable line naming the fields at fault."""

    def __init__(self, code: grpc.StatusCode, message: str, *, reason: str = "", domain: str = "",
                 metadata: dict[str, str] | None = None, field_violations: tuple[FieldViolation, ...] = (),
                 retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason
        self.domain = domain
        self.metadata = dict(metadata or {})
        self.field_violations = field_violations
        self.retry_after_s = retry_after_s

    def __str__(self) -> str:
        line = f"{self.code.name}: {self.message}"
        if self.reason:
            line += f" ({self.reason})"
        named = [v.field for v in self.field_violations if v.field and v.field not in self.message]
        if named:
            line += f" [fields: {', '.join(named)}]"
        return _one_line(line)


def _one_line(text: str) -> str:
    """Line breaks and other control characters escaped (`\\n`): services echo ids as given
    (`campaign a\\nb does not exist`), and a log or a terminal must still get one line."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


class InvalidArgument(HeraldError):
    pass


class NotFound(HeraldError):
    pass


class AlreadyExists(HeraldError):
    pass


class FailedPrecondition(HeraldError):
    pass


class OutOfRange(HeraldError):
    pass


class ResourceExhausted(HeraldError):
    pass


class Unauthenticated(HeraldError):
    pass


class PermissionDenied(HeraldError):
    pass


class Unavailable(HeraldError):
    pass


class DeadlineExceeded(HeraldError):
    pass


class Cancelled(HeraldError):
    pass


_BY_CODE: dict[grpc.StatusCode, type[HeraldError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.OUT_OF_RANGE: OutOfRange,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: Cancelled,
}


def from_rpc_error(exc: grpc.aio.AioRpcError) -> HeraldError:
    """The HeraldError of a failed call, its details decoded from the `grpc-status-details-bin`
    trailer the services send."""
    error = _BY_CODE.get(exc.code(), HeraldError)(exc.code(), exc.details() or "")
    try:
        # The sync decoder (the aio one raises TypeError); it reads only code, details and trailers.
        status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    except ValueError:  # a status that disagrees with its details: keep the code and message
        status = None
    violations: list[FieldViolation] = []
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            error.reason, error.domain, error.metadata = info.reason, info.domain, dict(info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations += [FieldViolation(v.field, v.description, v.reason) for v in bad.field_violations]
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            error.retry_after_s = retry.retry_delay.ToTimedelta().total_seconds()
    error.field_violations = tuple(violations)
    return error
