"""Typed option checks: a value given on the command line (`--set NAME.OPTION=VALUE`, read as
JSON) must fit the annotation of the parameter it sets, so `stem=maybe` or `k1=abc` is a clear
error at once, not a truthy string or a crash minutes later."""

from __future__ import annotations

import collections.abc as cabc
import math
import typing
from collections.abc import Callable, Mapping
from types import UnionType
from typing import Any

from gsid.errors import GsidError

_SEQUENCES = (list, tuple, cabc.Sequence)
_MAPPINGS = (dict, cabc.Mapping)


def type_hints(obj: Callable) -> dict[str, Any]:
    """Parameter annotations of a function or a class's __init__ (empty when unresolvable)."""
    target = obj.__init__ if isinstance(obj, type) else obj
    try:
        return typing.get_type_hints(target)
    except Exception:  # forward references to names only imported for type checking
        return {}


def matches(value: Any, hint: Any) -> bool:
    """Whether a JSON-read `value` fits the annotation `hint` (unknown types are trusted)."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, UnionType):
        return any(matches(value, a) for a in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
    if hint is str:
        return isinstance(value, str)
    if hint in (list, tuple) or origin in _SEQUENCES:
        return isinstance(value, list | tuple)
    if hint is dict or origin in _MAPPINGS:
        return isinstance(value, dict)
    return True


def describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, UnionType):
        return " or ".join(describe(a) for a in typing.get_args(hint))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    names = {bool: "true or false", int: "an integer", float: "a finite number",
             str: "a string", type(None): "null"}  # fmt: skip
    if hint in names:
        return names[hint]
    if hint in (list, tuple) or origin in _SEQUENCES:
        return "a JSON list"
    if hint is dict or origin in _MAPPINGS:
        return "a JSON object"
    return getattr(hint, "__name__", str(hint))


def check_types(options: Mapping[str, Any], hints: Mapping[str, Any], what: str) -> None:
    """Raise GsidError for the first option whose value does not fit its annotation."""
    for name, value in options.items():
        hint = hints.get(name)
        if hint is not None and not matches(value, hint):
            raise GsidError(
                f"{what} option {name}={value!r} must be {describe(hint)} (values are read as "
                f'JSON: true, 3, 1.5, "text", [1, 2])'
            )
