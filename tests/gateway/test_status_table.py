"""The gateway's one table from gRPC status to HTTP status, and the decoding of a failed
call into the problem a dialect renders (trackd/gateway/grpc_errors.py), on real
``grpc.aio.AioRpcError`` values carrying the ``grpc-status-details-bin`` trailer the server
sends.
"""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2

from trackd.gateway.grpc_errors import (
    HTTP_STATUS,
    STATUS_CODES,
    Problem,
    problem_from_rpc_error,
)

# grpc-gateway's HTTPStatusFromCode, code by code.
EXPECTED = {
    "OK": 200,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "UNAUTHENTICATED": 401,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
}


def test_every_grpc_status_has_its_http_status() -> None:
    assert set(HTTP_STATUS) == set(grpc.StatusCode)
    assert {code.name: status for code, status in HTTP_STATUS.items()} == EXPECTED


def test_every_http_status_of_the_table_has_a_snake_case_code() -> None:
    for status in set(HTTP_STATUS.values()) - {200}:
        assert Problem(status, "m").code == STATUS_CODES[status]
    assert Problem(418, "m").code == "error"
    # A reason with a code of its own wins over the status's.
    assert Problem(409, "m", reason="IDEMPOTENCY_KEY_IN_USE").code == "idempotency_key_in_use"
    assert Problem(422, "m", reason="IDEMPOTENCY_KEY_REUSE").code == "idempotency_key_reuse"
    assert Problem(400, "m", reason="INVALID_ARGUMENT").code == "invalid_request"


def rpc_error(code: grpc.StatusCode, message: str, *details: object) -> grpc.aio.AioRpcError:
    """A failed call as the server sends it: ``details`` in the status trailer; with none
    given, no trailer at all (a status grpc itself made, not trackd's server)."""
    trailing = grpc.aio.Metadata()
    if details:
        status = status_pb2.Status(code=code.value[0], message=message)
        for detail in details:
            status.details.add().Pack(detail)
        trailing.add("grpc-status-details-bin", status.SerializeToString())
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailing, details=message)


def info(reason: str) -> error_details_pb2.ErrorInfo:
    return error_details_pb2.ErrorInfo(reason=reason, domain="trackd")


def retry(seconds: int, nanos: int = 0) -> error_details_pb2.RetryInfo:
    return error_details_pb2.RetryInfo(
        retry_delay=duration_pb2.Duration(seconds=seconds, nanos=nanos))


def violation(field: str, description: str) -> error_details_pb2.BadRequest:
    return error_details_pb2.BadRequest(field_violations=[
        error_details_pb2.BadRequest.FieldViolation(field=field, description=description)])


def fields(problem: Problem) -> tuple[int, str, str, str, int | None]:
    return (problem.status, problem.message, problem.field, problem.reason,
            problem.retry_after)


@pytest.mark.parametrize("code", list(grpc.StatusCode)[1:], ids=lambda c: c.name)
def test_a_status_from_trackd_keeps_its_message_and_maps_by_the_table(
        code: grpc.StatusCode) -> None:
    problem = problem_from_rpc_error(rpc_error(code, "what the server said", info("R")))
    retry_after = 1 if EXPECTED[code.name] in (429, 503) else None
    assert fields(problem) == (EXPECTED[code.name], "what the server said", "", "R",
                               retry_after)


@pytest.mark.parametrize(("code", "status", "message", "retry_after"), [
    (grpc.StatusCode.UNAVAILABLE, 503, "the service is temporarily unavailable; retry later",
     1),
    (grpc.StatusCode.DEADLINE_EXCEEDED, 504, "the request took too long; retry later", None),
    (grpc.StatusCode.CANCELLED, 499, "the request was cancelled", None),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, 429, "the request is too large or too many were sent",
     1),
    (grpc.StatusCode.INTERNAL, 500, "internal error", None),
    (grpc.StatusCode.UNKNOWN, 500, "internal error", None),
])
def test_a_status_grpc_made_says_nothing_of_grpcs_own_text(
        code: grpc.StatusCode, status: int, message: str, retry_after: int | None) -> None:
    error = rpc_error(code, "failed to connect to all addresses; ipv4:127.0.0.1:1")
    assert fields(problem_from_rpc_error(error)) == (status, message, "", "", retry_after)


def test_the_first_field_violation_names_the_field_in_the_dialects_words() -> None:
    error = rpc_error(grpc.StatusCode.INVALID_ARGUMENT, "event.name: is required",
                      violation("event.name", "is required"), info("INVALID_ARGUMENT"))
    assert fields(problem_from_rpc_error(error)) == (
        400, "event.name is required", "event.name", "INVALID_ARGUMENT", None)
    dialect = problem_from_rpc_error(
        error, {grpc.StatusCode.INVALID_ARGUMENT: 422}, lambda path: path.split(".")[-1])
    assert fields(dialect) == (422, "name is required", "name", "INVALID_ARGUMENT", None)
    # A field the dialect has no name for: the description alone.
    unnamed = problem_from_rpc_error(error, field_name=lambda path: "")
    assert fields(unnamed) == (400, "is required", "", "INVALID_ARGUMENT", None)


@pytest.mark.parametrize(("delay", "retry_after"), [
    (retry(7), 7),
    (retry(2, 100_000_000), 3),  # rounded up: never sooner than the server asked
    (retry(0, 200_000_000), 1),  # at least a second
    (retry(0), 1),
])
def test_retry_info_becomes_whole_seconds_of_retry_after(
        delay: error_details_pb2.RetryInfo, retry_after: int) -> None:
    error = rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "rate limit exceeded", delay,
                      info("RATE_LIMITED"))
    assert fields(problem_from_rpc_error(error)) == (
        429, "rate limit exceeded", "", "RATE_LIMITED", retry_after)


def test_overrides_change_single_statuses_only() -> None:
    overrides = {grpc.StatusCode.FAILED_PRECONDITION: 409}
    precondition = rpc_error(grpc.StatusCode.FAILED_PRECONDITION, "m", info("R"))
    not_found = rpc_error(grpc.StatusCode.NOT_FOUND, "m", info("R"))
    assert problem_from_rpc_error(precondition, overrides).status == 409
    assert problem_from_rpc_error(not_found, overrides).status == 404
