"""Label and field selectors, parsed once per request and matched against stored objects.

The grammar is the API server's: comma-separated requirements, all of which must hold.
Labels: ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k`` (exists), ``!k``.
Fields: any dotted path (``metadata.name``, ``involvedObject.uid``, ``status.phase``) with ``=``,
``==``, ``!=``, compared as strings; a missing field reads as ``""``. A real server accepts only a
few fields per kind; being permissive here costs nothing for tests.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Matcher = Callable[[dict[str, Any]], bool]

_SET_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*(?:(in|notin)\s*\(([^)]*)\))?\s*$")
_EQ_RE = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|=|!=)\s*([A-Za-z0-9_.-]*)\s*$")


class SelectorError(ValueError):
    """A selector the server cannot parse: answered with 400 BadRequest."""


def _split(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p for p in parts if p.strip()]


def parse_label_selector(text: str | None) -> Matcher:
    """A predicate over an object's ``metadata.labels`` for a label selector string."""
    checks: list[Callable[[dict[str, str]], bool]] = []
    for part in _split(text or ""):
        eq = _EQ_RE.match(part)
        if eq:
            key, op, val = eq.groups()
            checks.append(_label_equals(key, val, negate=op == "!="))
            continue
        st = _SET_RE.match(part)
        if not st:
            raise SelectorError(f"unable to parse requirement: {part!r}")
        neg, key, op, values = st.groups()
        if neg and op:
            raise SelectorError(f"unable to parse requirement: {part!r}")
        allowed = {v.strip() for v in (values or "").split(",") if v.strip()}
        if op:
            checks.append(_label_in(key, allowed, negate=op == "notin"))
        else:
            checks.append(_label_exists(key, negate=bool(neg)))

    def match(obj: dict[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(check(labels) for check in checks)

    return match


def parse_field_selector(text: str | None) -> Matcher:
    """A predicate for a field selector (``metadata.name=x,status.phase!=Failed``)."""
    checks: list[Callable[[dict[str, Any]], bool]] = []
    for part in _split(text or ""):
        eq = _EQ_RE.match(part)
        if not eq:
            raise SelectorError(f"invalid field selector: {part.strip()!r}")
        field, op, val = eq.groups()
        keys = field.split(".")
        checks.append(_field_equals(keys, val, negate=op == "!="))

    def match(obj: dict[str, Any]) -> bool:
        return all(check(obj) for check in checks)

    return match


def _field(obj: Any, keys: list[str]) -> str:
    for key in keys:
        obj = obj.get(key) if isinstance(obj, dict) else None
    if obj is None:
        return ""
    if isinstance(obj, bool):
        return "true" if obj else "false"
    return str(obj)


def _label_equals(key: str, value: str, *, negate: bool) -> Callable[[dict[str, str]], bool]:
    return lambda labels: (labels.get(key) == value) != negate


def _label_in(key: str, allowed: set[str], *, negate: bool) -> Callable[[dict[str, str]], bool]:
    return lambda labels: (labels.get(key) in allowed) != negate


def _label_exists(key: str, *, negate: bool) -> Callable[[dict[str, str]], bool]:
    return lambda labels: (key in labels) != negate


def _field_equals(keys: list[str], value: str, *, negate: bool) -> Matcher:
    return lambda obj: (_field(obj, keys) == value) != negate
