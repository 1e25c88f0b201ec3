"""ErrorInfo reasons are API: every reason the server can send is a value of the proto enum
``trackd.v1.ErrorReason``, and the strings on the wire are the ones clients already match.

The server's errors take reasons only as enum values (``trackd.server.errors.reason_name`` checks
them); these tests also scan the server's source so a reason written as a bare string, or
a class default outside the enum, fails here rather than reaching a client.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import cast

import pytest

from trackd import server
from trackd.server import errors
from trackd.server.errors import (
    Aborted,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ServiceError,
    Unauthenticated,
    Unavailable,
    reason_name,
)
from trackd.v1 import errors_pb2

SERVER_ROOT = Path(server.__file__).parent

# What clients (and the gateway's dialects) match today: the wire form must never change.
WIRE_REASONS = {
    "INVALID_ARGUMENT", "MALFORMED_REQUEST", "IDEMPOTENCY_KEY_REUSE",
    "UNAUTHENTICATED", "API_KEY_MISSING", "API_KEY_INVALID",
    "PERMISSION_DENIED", "SCOPE_MISSING", "ORIGIN_NOT_AUTHORIZED",
    "WEBSITE_SCOPE_MISMATCH", "WEBSITE_NOT_ALLOWED",
    "NOT_FOUND", "USER_NOT_FOUND", "WEBSITE_NOT_FOUND",
    "ABORTED", "IDEMPOTENCY_KEY_IN_USE", "UNAVAILABLE", "RATE_LIMITED",
    "TRACKING_PLAN_VIOLATION",
    "CURSOR_EXPIRED",
}


def _enum_reasons() -> set[str]:
    return {reason_name(cast(errors_pb2.ErrorReason, value))
            for value in errors_pb2.ErrorReason.values()
            if value != errors_pb2.ERROR_REASON_UNSPECIFIED}


def test_the_enum_lists_exactly_the_reasons_on_the_wire() -> None:
    assert _enum_reasons() == WIRE_REASONS
    assert reason_name(errors_pb2.ERROR_REASON_IDEMPOTENCY_KEY_REUSE) == "IDEMPOTENCY_KEY_REUSE"


def test_every_value_but_unspecified_has_the_prefix() -> None:
    names = list(errors_pb2.ErrorReason.keys())
    assert names[0] == "ERROR_REASON_UNSPECIFIED"
    assert all(name.startswith(errors.REASON_PREFIX) for name in names)


@pytest.mark.parametrize("bad", [errors_pb2.ERROR_REASON_UNSPECIFIED, 999, "API_KEY_INVALID"])
def test_only_enum_values_become_reasons(bad: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        reason_name(bad)  # type: ignore[arg-type]
    with pytest.raises((ValueError, TypeError)):
        NotFound("x", reason=bad)  # type: ignore[arg-type]


def _service_errors() -> list[type[ServiceError]]:
    found: list[type[ServiceError]] = []
    pending: list[type[ServiceError]] = [ServiceError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def test_each_error_class_defaults_to_a_reason_of_the_enum() -> None:
    classes = {cls.__name__: cls for cls in _service_errors()}
    assert {"InvalidArgument", "Unauthenticated", "PermissionDenied", "NotFound", "Aborted",
            "Unavailable"} <= set(classes)
    for name, cls in classes.items():
        if cls is ServiceError:
            assert cls.reason == ""  # INTERNAL: no ErrorInfo
        else:
            assert cls.reason in _enum_reasons(), name


def test_an_error_sends_the_enum_name_without_its_prefix() -> None:
    cases: list[tuple[ServiceError, str]] = [
        (InvalidArgument.one("name", "is required"), "INVALID_ARGUMENT"),
        (InvalidArgument.one("idempotency_key", "reused",
                             reason=errors_pb2.ERROR_REASON_IDEMPOTENCY_KEY_REUSE),
         "IDEMPOTENCY_KEY_REUSE"),
        (Unauthenticated("no key", reason=errors_pb2.ERROR_REASON_API_KEY_MISSING),
         "API_KEY_MISSING"),
        (PermissionDenied("scope", reason=errors_pb2.ERROR_REASON_SCOPE_MISSING),
         "SCOPE_MISSING"),
        (Aborted("busy", reason=errors_pb2.ERROR_REASON_IDEMPOTENCY_KEY_IN_USE),
         "IDEMPOTENCY_KEY_IN_USE"),
        (Unavailable("down"), "UNAVAILABLE"),
    ]
    for error, wire in cases:
        infos = [d for d in error.details() if d.DESCRIPTOR.name == "ErrorInfo"]
        assert [(i.reason, i.domain) for i in infos] == [(wire, errors.ERROR_DOMAIN)]


def _string_reasons(path: Path) -> list[str]:
    """Places in ``path`` that give a reason as a string: ``reason="..."`` keyword
    arguments, ``reason = "..."`` assignments and ``ErrorInfo(reason=...)`` outside the
    helper's own module."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "reason" \
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            found.append(f"{path.name}:{node.value.lineno}: reason={node.value.value!r}")
        if isinstance(node, ast.Call) and path.name != "errors.py" \
                and getattr(node.func, "attr", getattr(node.func, "id", "")) == "ErrorInfo":
            found.append(f"{path.name}:{node.lineno}: builds its own ErrorInfo")
        if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, str) and node.value.value:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                name = getattr(target, "id", getattr(target, "attr", ""))
                if name == "REASON_PREFIX":
                    continue
                if "REASON" in name.upper() or name.upper().endswith(
                        ("_NOT_FOUND", "_MISMATCH", "_NOT_ALLOWED", "_NOT_AUTHORIZED")):
                    found.append(f"{path.name}:{node.lineno}: {name} = {node.value.value!r}")
    return found


def test_no_server_module_gives_a_reason_as_a_string() -> None:
    sources = sorted(SERVER_ROOT.rglob("*.py"))
    assert len(sources) > 5
    offenders = [hit for path in sources for hit in _string_reasons(path)]
    assert offenders == []


def test_the_scan_would_catch_a_string_reason(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(inspect.cleandoc('''
        SOMETHING_NOT_FOUND = "SOMETHING_NOT_FOUND"
        raise NotFound("gone", reason="GONE")
        detail = error_details_pb2.ErrorInfo(reason=x)
    '''))
    assert len(_string_reasons(sample)) == 3
