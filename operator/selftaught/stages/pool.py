"""The instruction pool of step 1, read from the sources users have.

Two line shapes (``instructions.format``):

* ``jsonl``: the instruction under ``instructions.field``; optionally its category under
  ``categoryField`` (the model then labels nothing) and a reference answer under
  ``referenceField``;
* ``mtbench``: MT-Bench's ``question.jsonl`` (``question_id``, ``category``, ``turns``): the first
  turn is the instruction (the loop judges single-turn answers), ``category`` its category, and
  ``referenceSource`` (MT-Bench's ``reference_answer/<model>.jsonl``) adds the first turn of each
  question's reference answer, joined by ``question_id``.

A line that does not have what its format needs is a bad line: counted with its line number, not
fatal (a scraped pool always has some). :func:`parse` is pure so the tests drive it with rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from selftaught import builtin
from selftaught.api import InstructionsSpec, StorageSpec
from selftaught.pod import BadInput
from selftaught.storage import StorageNotFound, open_object

#: Bad line numbers named in a message (the count is always complete).
MAX_REPORTED_LINES = 20


@dataclass(frozen=True)
class PoolRow:
    """One usable instruction with what the pool says about it."""

    text: str
    line: int
    #: The pool's own category (categoryField, MT-Bench's 'category'); None: the model labels it.
    category: str | None = None
    #: A reference answer: the row is judged reference-guided.
    reference: str | None = None


@dataclass
class Pool:
    rows: list[PoolRow] = field(default_factory=list)
    bad: list[int] = field(default_factory=list)
    read: int = 0


def _text(row: Any, key: str) -> str | None:
    value = row.get(key) if isinstance(row, dict) else None
    return value.strip() if isinstance(value, str) and value.strip() else None


def _first_turn(row: Any, key: str = "turns") -> str | None:
    turns = row.get(key) if isinstance(row, dict) else None
    if isinstance(turns, list) and turns and isinstance(turns[0], str) and turns[0].strip():
        return turns[0].strip()
    return None


def parse(
    lines: Iterable[tuple[int, Any]],
    spec: InstructionsSpec,
    references: dict[Any, str] | None = None,
) -> Pool:
    """The pool's usable rows and bad line numbers; pure (``references``: question_id -> text)."""
    pool = Pool()
    for line_no, row in lines:
        pool.read += 1
        parsed = _parse_row(line_no, row, spec, references or {})
        if parsed is None:
            pool.bad.append(line_no)
        else:
            pool.rows.append(parsed)
    return pool


def _parse_row(
    line_no: int, row: Any, spec: InstructionsSpec, references: dict[Any, str]
) -> PoolRow | None:
    if spec.format == "mtbench":
        text, category = _first_turn(row), _text(row, "category")
        if text is None or category is None:
            return None
        question = row.get("question_id")
        return PoolRow(text, line_no, category, references.get(question))
    text = _text(row, spec.field)
    if text is None:
        return None
    category = None
    if spec.category_field is not None:
        category = _text(row, spec.category_field)
        if category is None:
            return None
    reference = _text(row, spec.reference_field) if spec.reference_field else None
    return PoolRow(text, line_no, category, reference)


def parse_references(lines: Iterable[tuple[int, Any]], source: str) -> dict[Any, str]:
    """MT-Bench reference answers: question_id -> first turn of the first choice.

    Unlike the pool, this file is small and hand-made: a bad line is bad input, named."""
    found: dict[Any, str] = {}
    for line_no, row in lines:
        choices = row.get("choices") if isinstance(row, dict) else None
        first = choices[0] if isinstance(choices, list) and choices else None
        text = _first_turn(first) if isinstance(first, dict) else None
        if text is None or "question_id" not in row:
            raise BadInput(
                f"instructions.referenceSource {source} line {line_no}: want MT-Bench's "
                "reference shape {'question_id', 'choices': [{'turns': [text, ...]}]}"
            )
        found[row["question_id"]] = text
    return found


def _lines(uri: str, field_name: str, storage: StorageSpec | None) -> list[tuple[int, Any]]:
    try:
        store, key = open_object(uri, storage_spec=storage)
        return list(store.read_jsonl(key))
    except ValueError as error:
        raise BadInput(f"instructions.{field_name} {uri}: {error}") from error
    except StorageNotFound as error:
        raise BadInput(f"instructions.{field_name} {uri} cannot be read: {error}") from error


def read(spec: InstructionsSpec, *, seed: int, storage: StorageSpec | None) -> Pool:
    """The pool ``spec`` names: a built-in one or a file in one of the two formats."""
    source = spec.source
    if builtin.is_builtin(source):
        try:
            found = builtin.from_source(source)
        except builtin.UnknownBuiltin:
            known = ", ".join(builtin.known())
            raise BadInput(
                f"instructions.source {source}: unknown built-in pool (try {known})"
            ) from None
        texts = found.pool(seed=seed, size=builtin.BUILTIN_POOL_SIZE)
        return Pool(rows=[PoolRow(t, i + 1) for i, t in enumerate(texts)], read=len(texts))
    references = None
    if spec.reference_source:
        lines = _lines(spec.reference_source, "referenceSource", storage)
        references = parse_references(lines, spec.reference_source)
    pool = parse(_lines(source, "source", storage), spec, references)
    if not pool.rows:
        raise BadInput(
            f"instructions.source {source}: no usable line ({len(pool.bad)} bad; "
            f"{needs(spec)}; first bad lines: {pool.bad[:MAX_REPORTED_LINES]})"
        )
    return pool


def needs(spec: InstructionsSpec) -> str:
    """What each line of the pool must have, for messages."""
    if spec.format == "mtbench":
        return "each needs MT-Bench's non-empty 'turns' list and a 'category' string"
    wanted = [spec.field, *([spec.category_field] if spec.category_field else [])]
    return "each needs a non-empty string under " + " and ".join(repr(k) for k in wanted)
