"""Logging setup: one JSON object per line, or readable text, and quiet libraries.

``log_format`` (``--log-format``, ``TRACKD_LOG_FORMAT``) is ``auto`` (the default: text
when the log stream, stderr, is a terminal, else JSON), ``json`` or ``text``.

``log_level`` (``--log-level``, ``TRACKD_LOG_LEVEL``) sets trackd's own loggers (``trackd``,
``trackd.access``, ``cli``, ``server``, ``gateway``, ``storage``); every other library's
stays at WARNING, so DEBUG shows trackd's story, not the MongoDB driver's internals.
Another logger can be asked for after a comma: ``DEBUG,pymongo=DEBUG``.

A JSON line holds ``time`` (UTC, ISO-8601, milliseconds), ``level``, ``logger``,
``message``, any structured ``fields`` the record carries (the access log's:
trackd/gateway/access.py, trackd/server/observability.py) and ``exception`` (a traceback) when there
is one; a record made while a request or call is handled carries its ``request_id``.
Nothing here adds a request's body or headers: log calls pass fields explicitly.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Literal, TextIO

import orjson

from trackd.gateway.access import current_request_id
from trackd.server.observability import current_call

LogFormat = Literal["auto", "json", "text"]

OWN_LOGGERS = ("trackd",)
LIBRARY_LEVEL = logging.WARNING
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def parse_level(spec: str) -> tuple[int, dict[str, int]]:
    """``"DEBUG,pymongo=INFO"`` -> (DEBUG, {"pymongo": INFO}); ValueError if malformed."""
    own, *others = (part.strip() for part in spec.split(","))
    overrides: dict[str, int] = {}
    for other in others:
        name, sep, level = other.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{other!r} is not LOGGER=LEVEL")
        overrides[name.strip()] = _level(level)
    return _level(own), overrides


def _level(name: str) -> int:
    upper = name.strip().upper()
    if upper not in _LEVELS:
        raise ValueError(f"must be one of {', '.join(_LEVELS)}")
    return logging.getLevelNamesMapping()[upper]


class RequestIdFilter(logging.Filter):
    """Gives every record made while a request or call is handled its ``request_id``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "fields"):
            call = current_call()
            request_id = call.request_id if call is not None else current_request_id()
            if request_id is not None:
                record.fields = {"request_id": request_id}
        return True


class _Clock:
    """A record's time as ``2026-12-01T10:37:28.571Z``: the part up to the second is
    formatted once per second, not once per line (most lines are access lines, hundreds
    or thousands a second)."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def stamp(self, created: float) -> str:
        # Rounded to the microsecond first, as datetime.fromtimestamp does: a float's
        # fraction of a second is inexact (...28.001 may be ...28.000999).
        micros = round(created * 1_000_000)
        second = micros // 1_000_000
        if second != self._second:
            # Handlers format under their own lock; a stale pair is at worst recomputed.
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
            self._second = second
        return f"{self._prefix}{micros // 1000 % 1000:03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def __init__(self) -> None:
        super().__init__()
        self._clock = _Clock()

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self._clock.stamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...`` for a person at a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = getattr(record, "fields", None)
        if not isinstance(fields, dict):
            return text
        extra = " ".join(f"{key}={_text(value)}" for key, value in fields.items()
                         if key != "kind" and value is not None)
        head, newline, tail = text.partition("\n")  # a traceback stays below the line
        return f"{head} {extra}{newline}{tail}"


def _skip_unused_record_fields() -> None:
    """Records stop collecting what no line of trackd's shows: the caller's file and line
    (finding it walks the stack on every record), thread, process and task names. These
    are the switches the Logging HOWTO's "Optimization" section names. They are the
    process's: once set, any formatter's ``%(filename)s:%(lineno)d`` reads
    ``(unknown file):0`` and ``stack_info`` is not collected."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    if hasattr(logging, "logAsyncioTasks"):  # Python 3.12 and later
        logging.logAsyncioTasks = False


def _text(value: object) -> str:
    """A field's value as the text line shows it: a list or object (a TrackEvents line's
    ``calls``) as compact JSON, anything else as itself."""
    if isinstance(value, dict | list):
        return orjson.dumps(value, default=str).decode()
    return str(value)


def resolve_format(log_format: LogFormat, stream: TextIO) -> Literal["json", "text"]:
    if log_format != "auto":
        return log_format
    isatty = getattr(stream, "isatty", None)
    return "text" if isatty is not None and isatty() else "json"


def configure(level_spec: str, log_format: LogFormat, stream: TextIO | None = None) -> None:
    """Send every log record to ``stream`` (stderr) in the chosen format and levels."""
    stream = stream if stream is not None else sys.stderr
    own, overrides = parse_level(level_spec)
    _skip_unused_record_fields()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if resolve_format(log_format, stream) == "json"
                         else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(max(own, LIBRARY_LEVEL))
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(own)
    for name, level in overrides.items():
        logging.getLogger(name).setLevel(level)
