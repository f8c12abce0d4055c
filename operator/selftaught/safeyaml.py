"""Read one YAML document that a user hands us, with every resource bounded. Pure but for parsing.

PyYAML's ``safe_load`` constructs no arbitrary objects, but it is not safe against a hostile
file: a "billion laughs" alias chain took >20 GB (FIELD-NOTES), 20,000 nested brackets end in a
``RecursionError``, bytes that are not UTF-8 raise ``UnicodeDecodeError``, a duplicate key
silently keeps the last value, and a second document is silently ignored. This module checks
the raw bytes and the parser's event stream *before* anything is composed or constructed, so
each of these is refused in well under a second with a message that names the line (or byte):

- size: at most :data:`MAX_BYTES` (the API server itself refuses requests over 3 MiB and etcd
  objects over 1.5 MiB; a SelfTaughtRun is a few KiB);
- encoding: strict UTF-8 (what ``kubectl`` sends); a UTF-16/32 byte-order mark is named;
- nesting: at most :data:`MAX_DEPTH` levels (a SelfTaughtRun needs about 10, ``affinity``
  included);
- aliases: the document as expanded may hold at most :data:`MAX_NODES` nodes, counted without
  expanding anything (go-yaml, which kube-apiserver uses, refuses "excessive aliasing" the same
  way);
- exactly one document (``selftaught run`` runs one SelfTaughtRun; a file of several is
  refused, not silently cut to its first);
- duplicate keys in a mapping are refused, naming the key and both lines (kube-apiserver refuses
  them too since 1.25's strict field validation).
"""

from __future__ import annotations

import codecs
from typing import Any

import yaml

#: Largest file accepted, in bytes (1 MiB).
MAX_BYTES = 1 << 20
#: Deepest nesting of mappings and sequences.
MAX_DEPTH = 64
#: Most nodes the document may hold once its aliases are expanded.
MAX_NODES = 100_000

#: libyaml's parser when PyYAML was built with it (events 300x faster than pure Python's, which
#: spent 0.24 s on the first brackets of a 20,000-deep file); PyYAML's own otherwise.
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


class UnsafeYAML(ValueError):
    """The input is not one plain, bounded YAML document; the message says where and why."""


def decode(data: bytes) -> str:
    """``data`` as text: strict UTF-8 (a UTF-8 byte-order mark is allowed and dropped)."""
    if len(data) > MAX_BYTES:
        raise UnsafeYAML(f"file is {len(data):,} bytes; at most {MAX_BYTES:,} are accepted")
    for bom, name in _BOMS:  # UTF-32 LE starts like UTF-16 LE: longest first
        if data.startswith(bom):
            raise UnsafeYAML(f"file is {name}-encoded (byte-order mark); save it as UTF-8")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise UnsafeYAML(
            f"line {line} (byte {error.start}): not valid UTF-8 "
            f"({data[error.start : error.end]!r}: {error.reason}); save the file as UTF-8"
        ) from error


def _where(event: yaml.Event) -> str:
    mark = event.start_mark
    return f"line {mark.line + 1}" if mark is not None else "somewhere"


def check_events(text: str) -> None:
    """Refuse deep nesting, alias explosions and extra documents from the event stream alone.

    Events are produced one at a time by a loop, not by recursion, so even a 20,000-deep file is
    read to the point of refusal with constant stack. An anchored node's expanded size is
    remembered; an alias adds that size, so the check is linear in the file, however many times
    the aliases would multiply it.
    """
    sizes: dict[str, int] = {}
    stack: list[tuple[str | None, int]] = []  # (anchor, nodes inside so far) per open collection
    total = 0
    documents = 0

    def grow(event: yaml.Event, size: int, new_nodes: int) -> None:
        """A finished node of expanded ``size``; ``new_nodes`` of it not yet in ``total``."""
        nonlocal total
        total += new_nodes
        if stack:
            anchor, inside = stack[-1]
            stack[-1] = (anchor, inside + size)
        if total > MAX_NODES:
            raise UnsafeYAML(
                f"{_where(event)}: the document expands to more than {MAX_NODES:,} nodes "
                "(aliases that multiply, a 'billion laughs'?)"
            )

    try:
        for event in yaml.parse(text, Loader=_SafeLoader):
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise UnsafeYAML(
                        f"{_where(event)}: a second YAML document; the file must hold exactly "
                        "one SelfTaughtRun (run each in its own file)"
                    )
            elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                if len(stack) >= MAX_DEPTH:
                    raise UnsafeYAML(f"{_where(event)}: nested more than {MAX_DEPTH} levels deep")
                stack.append((event.anchor, 0))
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                anchor, inside = stack.pop()
                if anchor is not None:
                    sizes[anchor] = inside + 1
                grow(event, inside + 1, 1)
            elif isinstance(event, yaml.ScalarEvent):
                if event.anchor is not None:
                    sizes[event.anchor] = 1
                grow(event, 1, 1)
            elif isinstance(event, yaml.AliasEvent):
                size = sizes.get(event.anchor or "", 1)
                grow(event, size, size)
    except yaml.MarkedYAMLError as error:
        if "nesting depth" in str(error.problem):  # libyaml's own limit, met while scanning ahead
            mark = error.problem_mark
            line = f"line {mark.line + 1}" if mark is not None else "somewhere"
            raise UnsafeYAML(f"{line}: nested more than {MAX_DEPTH} levels deep") from error
        return  # a syntax error: composing reports it with its line


class _UniqueKeyLoader(_SafeLoader):  # type: ignore[misc,valid-type]
    """SafeLoader that refuses a key repeated in one mapping, naming it and both lines."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if (
                not isinstance(key_node, yaml.ScalarNode)
                or key_node.tag == "tag:yaml.org,2002:merge"
            ):
                continue
            key = self.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
            line = key_node.start_mark.line + 1
            if key in seen:
                raise UnsafeYAML(
                    f"line {line}: duplicate key {key!r} (first on line {seen[key]}); "
                    "YAML keeps only one of them"
                )
            seen[key] = line
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


def load_one(text: str) -> tuple[Any, yaml.Node | None]:
    """The single document in ``text`` and its node tree (for line numbers); bounds checked.

    Raises :class:`UnsafeYAML` for a bound broken and :class:`yaml.YAMLError` for a syntax
    error (its ``problem_mark`` names the line).
    """
    check_events(text)
    loader = _UniqueKeyLoader(text)
    try:
        node = loader.get_single_node()
        document = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    return document, node
