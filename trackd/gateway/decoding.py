"""Request body shapes, decoded and validated in one compiled pass.

A dialect declares each body once, as a TypedDict configured for pydantic (strict, unknown
fields ignored or, where said, kept; string limits as ``StringConstraints``).
:class:`BodySchema` compiles it twice:

- a msgspec decoder (C: one pass from the raw bytes to the dicts, checking types and
  limits on the way), which answers every body it accepts;
- pydantic's ``TypeAdapter``, which judges every body msgspec refuses. It stays the
  definition of the contract: what a body that fails says (the first error, its path
  and wording, in :mod:`trackd.gateway.body`) is pydantic's, and so is every body
  msgspec refuses but pydantic takes (a ``NaN``, an integer beyond 64 bits, a date-time
  without seconds).

So the msgspec decoder only ever accepts a subset of what pydantic accepts, with the same
values. Where msgspec alone would differ, the decoder type is narrowed:

- a body nested deeper than :data:`MAX_FAST_DEPTH` (:func:`shallow`) goes to pydantic
  without being decoded, since pydantic refuses one nested past 200 levels as not JSON
  and msgspec would go on;
- a body holding a fraction of a second past microseconds goes to pydantic too: msgspec
  rounds it where pydantic cuts it (other date-time forms msgspec reads, it reads as
  pydantic does, to the same instant and offset; the forms it does not read it refuses);
- a TypedDict that keeps unknown fields (pydantic's ``extra="allow"``: Amplitude's
  events) is pydantic's alone: msgspec would drop them, and keeping them cost more than
  pydantic does.

Imports: msgspec, pydantic; nothing of trackd.
"""

from __future__ import annotations

import datetime as _dt
import re
import types
import typing
from typing import (
    Annotated,
    Any,
    Generic,
    Literal,
    NotRequired,
    Required,
    TypeVar,
    Union,
    get_args,
    get_origin,
    get_type_hints,
    overload,
)

import msgspec
from pydantic import AwareDatetime, ConfigDict, StringConstraints, TypeAdapter
from typing_extensions import TypedDict, is_typeddict

T = TypeVar("T")

# How a body is read (every dialect's TypedDicts carry it, through ``with_config``):
# strictly, a number is not a string; unknown fields are ignored.
STRICT_BODY = ConfigDict(strict=True, extra="ignore")
# A string field that must not be empty.
NonEmpty = Annotated[str, StringConstraints(min_length=1)]

# How deep msgspec may decode a body itself: deeper goes to pydantic, which refuses a
# body nested past 200 levels as not JSON, where msgspec would go on.
MAX_FAST_DEPTH = 128
_BRACKETS = bytes.maketrans(b"[{]}", b"(())")
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))


def shallow(raw: bytes, limit: int = MAX_FAST_DEPTH) -> bool:
    """Whether ``raw`` surely nests at most ``limit`` arrays and objects deep.

    Brackets inside strings are counted too, so a shallow body may be taken for a deep
    one (and judged by pydantic), never the other way round. Each pass drops the
    innermost pairs, one level; what no pass can pair counts as that many more levels.
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:  # a small body: no more levels than that
        return True
    brackets = raw.translate(_BRACKETS, _NOT_BRACKETS)
    levels = 0
    while brackets.count(b"(") + levels > limit:
        paired = brackets.replace(b"()", b"")
        if len(paired) == len(brackets):
            return False
        brackets = paired
        levels += 1
    return True


# A fraction of a second past microseconds: msgspec rounds it where pydantic cuts it, so
# a body holding one (anywhere, even in a string) is judged by pydantic.
_LONG_FRACTION = re.compile(rb":[0-9]{2}\.[0-9]{7}")


class _PydanticOnly(Exception):
    """A shape msgspec cannot decode as pydantic does (unknown fields kept)."""


def _fast(shape: Any) -> Any:
    """The msgspec type for a pydantic ``shape`` (see the module's docstring)."""
    if shape is AwareDatetime:
        return Annotated[_dt.datetime, msgspec.Meta(tz=True)]
    origin = get_origin(shape)
    args = get_args(shape)
    if origin is Annotated:
        metas = [_meta(meta) for meta in shape.__metadata__ if _meta(meta) is not None]
        inner = _fast(args[0])
        return Annotated[inner, *metas] if metas else inner
    if is_typeddict(shape):
        return _typed_dict(shape)
    if origin is list:
        return list[_fast(args[0])]  # type: ignore[misc]
    if origin is dict:
        return dict[str, _fast(args[1])]  # type: ignore[misc]
    if origin in (Union, types.UnionType):
        return Union[tuple(_fast(arg) for arg in args)]  # noqa: UP007
    if origin is Literal or shape in (str, int, float, bool, type(None), None) \
            or isinstance(shape, type):
        return shape
    raise TypeError(f"no msgspec type for {shape!r}")  # pragma: no cover - a new shape


def _meta(meta: Any) -> msgspec.Meta | None:
    """pydantic's string limits as msgspec's; other metadata (a BeforeValidator) adds no
    constraint msgspec could check, and pydantic still judges what msgspec refuses."""
    if not isinstance(meta, StringConstraints):
        return None
    if (meta.strip_whitespace, meta.to_upper, meta.to_lower, meta.pattern) != (
            None, None, None, None):  # pragma: no cover - no body uses them
        raise TypeError(f"no msgspec constraint for {meta!r}")
    return msgspec.Meta(min_length=meta.min_length, max_length=meta.max_length)


def _typed_dict(shape: Any) -> Any:
    hints = get_type_hints(shape, include_extras=True)
    fields: dict[str, Any] = {}
    for name, hint in hints.items():
        # Under ``from __future__ import annotations`` the class cannot see NotRequired
        # (its __required_keys__ follow totality alone): the resolved hint says it.
        required = name in shape.__required_keys__
        if get_origin(hint) in (Required, NotRequired, typing.Required, typing.NotRequired):
            required = get_origin(hint) in (Required, typing.Required)
            hint = get_args(hint)[0]
        fields[name] = (Required if required else NotRequired)[_fast(hint)]
    # The functional form: the class syntax cannot take names such as "_metadata".
    fast: Any = TypedDict(f"Fast{shape.__name__}", fields)  # type: ignore[misc]
    if getattr(shape, "__pydantic_config__", {}).get("extra") == "allow":
        # msgspec drops unknown fields; keeping them costs more than pydantic does
        # (bench/decoders.py's note), so such a body stays pydantic's.
        raise _PydanticOnly(shape.__name__)
    return fast


class BodySchema(Generic[T]):
    """A body's shape: msgspec decodes what it can, pydantic judges the rest."""

    @overload
    def __init__(self, shape: type[T]) -> None: ...

    @overload
    def __init__(self, shape: Any) -> None: ...

    def __init__(self, shape: Any) -> None:
        self.adapter: TypeAdapter[T] = TypeAdapter(shape)
        try:
            self._type: Any = _fast(shape)
        except _PydanticOnly:
            self._type = None
        self._decoder: msgspec.json.Decoder[Any] | None = None if self._type is None \
            else msgspec.json.Decoder(self._type, strict=True)

    def validate_json(self, raw: bytes) -> T:
        """As ``TypeAdapter.validate_json``: the value, or pydantic's ValidationError."""
        if self._decoder is None or not shallow(raw) or (
                b"." in raw and _LONG_FRACTION.search(raw)):
            return self.adapter.validate_json(raw)
        try:
            value: T = self._decoder.decode(raw)
        except msgspec.MsgspecError:
            return self.adapter.validate_json(raw)
        return value

    def validate_python(self, value: Any) -> T:
        """As ``TypeAdapter.validate_python`` (a value already decoded from JSON). Always
        pydantic's: msgspec's ``convert`` from Python objects measured slower (PostHog's
        events, 1.5 against 0.8 µs each)."""
        return self.adapter.validate_python(value)
