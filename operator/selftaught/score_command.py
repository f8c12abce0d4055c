"""``selftaught score``: RewardBench's official score of judgments produced anywhere.

A user who ran a judge elsewhere (vLLM, an API, another framework) scores its raw outputs the
way RewardBench scores a generative judge, with the same rules the evaluate stage uses for
RewardBench-format sets (:func:`selftaught.scoring.rewardbench_report`):

* ``--dataset DATA.jsonl``: RewardBench's format, one object a line with ``id`` (string or
  integer), ``prompt``, ``chosen``, ``rejected`` (strings) and ``subset`` (RewardBench's subset
  name; other names are reported but take no part in the sections).
* ``--judgments OUT.jsonl``: one object a line, ``{"id": ..., "swapped": bool, "judgments":
  [raw judge texts...]}``; ``swapped`` is true when ``chosen`` was shown as answer B; several
  texts are a majority vote. Ids match the dataset's (compared as text, so ``7`` and ``"7"``
  are the same row).

Prints one JSON object (``overall``, ``sections``, ``subsets``, ``rows_scored``, ``partial``,
...). Rows of the dataset without judgments are not scored and make the result partial. Any
malformed line is refused with its file and line number and exit status 2, before anything is
scored: a silently skipped line would change the score.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selftaught import scoring

#: Fields a RewardBench-format row must carry, all strings.
TEXT_FIELDS = ("prompt", "chosen", "rejected", "subset")


class ScoreInputError(ValueError):
    """A malformed input file or line; the message names the file and line."""


@dataclass(frozen=True)
class Judged:
    """One row's judgments: the raw texts, and whether chosen was shown as B."""

    swapped: bool
    judgments: tuple[str, ...]


def _objects(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; anything else is a ScoreInputError."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ScoreInputError(f"{path}: cannot be read: {error}") from error
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            raise ScoreInputError(f"{path}:{number}: not JSON: {error.msg}") from error
        if not isinstance(value, dict):
            raise ScoreInputError(f"{path}:{number}: expected a JSON object")
        yield number, value


def _row_id(path: Path, number: int, row: dict[str, Any]) -> str:
    value = row.get("id")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ScoreInputError(f"{path}:{number}: field 'id' must be a string or an integer")
    return str(value)


def read_dataset(path: Path) -> dict[str, str]:
    """The dataset's rows as id -> subset, every line checked."""
    subsets: dict[str, str] = {}
    for number, row in _objects(path):
        row_id = _row_id(path, number, row)
        for name in TEXT_FIELDS:
            if not isinstance(row.get(name), str):
                raise ScoreInputError(f"{path}:{number}: field '{name}' must be a string")
        if row_id in subsets:
            raise ScoreInputError(f"{path}:{number}: duplicate id {row_id!r}")
        subsets[row_id] = row["subset"]
    if not subsets:
        raise ScoreInputError(f"{path}: no rows")
    return subsets


def read_judgments(path: Path, dataset: dict[str, str]) -> dict[str, Judged]:
    """The judgments file as id -> Judged; ids must exist in the dataset, once each."""
    found: dict[str, Judged] = {}
    for number, row in _objects(path):
        row_id = _row_id(path, number, row)
        if row_id not in dataset:
            raise ScoreInputError(f"{path}:{number}: id {row_id!r} is not in the dataset")
        if row_id in found:
            raise ScoreInputError(f"{path}:{number}: duplicate id {row_id!r}")
        if not isinstance(row.get("swapped"), bool):
            raise ScoreInputError(f"{path}:{number}: field 'swapped' must be true or false")
        texts = row.get("judgments")
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise ScoreInputError(
                f"{path}:{number}: field 'judgments' must be a non-empty list of strings"
            )
        found[row_id] = Judged(swapped=row["swapped"], judgments=tuple(texts))
    if not found:
        raise ScoreInputError(f"{path}: no judgments")
    return found


def score(dataset: dict[str, str], judged: dict[str, Judged]) -> dict[str, Any]:
    """The official report of the judged rows (pure)."""
    results = []
    for row_id, entry in judged.items():
        outcomes = [scoring.official_verdict(text) for text in entry.judgments]
        results.append(
            scoring.ExampleResult(
                subset=dataset[row_id],
                score=scoring.official_example_score(outcomes, chosen_is_a=not entry.swapped),
                invalid=all(o not in ("A", "B") for o in outcomes),
                ties=outcomes.count("tie"),
            )
        )
    report = scoring.rewardbench_report(results)
    report["rows_in_dataset"] = len(dataset)
    return report


def main(dataset: Path, judgments: Path) -> tuple[int, str]:
    """(exit status, text to print): 0 and the JSON report, or 2 and the input error."""
    try:
        rows = read_dataset(dataset)
        report = score(rows, read_judgments(judgments, rows))
    except ScoreInputError as error:
        return 2, f"selftaught score: {error}"
    return 0, json.dumps(report, indent=2)
