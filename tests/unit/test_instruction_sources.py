"""Instruction sources users have: JSONL with category/reference fields, MT-Bench's questions,
a pool's own categories instead of model labels, a separate labelling model, and references
carried from the pool row to the pairs that judge and evaluate read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from selftaught import api
from selftaught.artifacts import shard_prefix, stage_prefix
from selftaught.phases import Stage
from selftaught.pod import BadInput
from selftaught.stages import pairs, pool, select
from selftaught.storage import MemoryStorage
from selftaught.validation import check_manifest
from tests.unit.stage_env import spec, task

MISSING_MODEL = "file:///nonexistent/label-model"


def instructions(**fields: Any) -> api.InstructionsSpec:
    return api.InstructionsSpec.model_validate({"source": "file:///pool.jsonl", **fields})


POOL_CASES = [
    pytest.param(
        {},
        [{"instruction": " Add 2 and 3 "}],
        [pool.PoolRow("Add 2 and 3", 1)],
        [],
        id="jsonl-text-only-model-labels",
    ),
    pytest.param(
        {"field": "prompt", "categoryField": "kind"},
        [{"prompt": "p1", "kind": "Math"}, {"prompt": "p2"}, {"prompt": "p3", "kind": 4}],
        [pool.PoolRow("p1", 1, "Math")],
        [2, 3],
        id="jsonl-category-field-required-per-line",
    ),
    pytest.param(
        {"referenceField": "answer"},
        [{"instruction": "q1", "answer": "a1"}, {"instruction": "q2"}, ["not", "an", "object"]],
        [pool.PoolRow("q1", 1, None, "a1"), pool.PoolRow("q2", 2)],
        [3],
        id="jsonl-reference-optional-per-line",
    ),
    pytest.param(
        {"format": "mtbench"},
        [
            {"question_id": 81, "category": "writing", "turns": ["first", "second"]},
            {"question_id": 82, "category": "math", "turns": []},
            {"question_id": 83, "turns": ["no category"]},
        ],
        [pool.PoolRow("first", 1, "writing")],
        [2, 3],
        id="mtbench-first-turn-and-category",
    ),
]


@pytest.mark.parametrize(("fields", "rows", "usable", "bad"), POOL_CASES)
def test_pool_lines_become_rows_or_numbered_bad_lines(
    fields: dict[str, Any], rows: list[Any], usable: list[pool.PoolRow], bad: list[int]
) -> None:
    found = pool.parse(enumerate(rows, start=1), instructions(**fields))
    assert found.rows == usable
    assert found.bad == bad
    assert found.read == len(rows)


def test_mtbench_references_join_by_question_id() -> None:
    answers = [
        {"question_id": 111, "choices": [{"index": 0, "turns": ["x = 4", "later turn"]}]},
    ]
    references = pool.parse_references(enumerate(answers, start=1), "file:///ref.jsonl")
    questions = [
        {"question_id": 111, "category": "math", "turns": ["Solve x - 2 = 2"]},
        {"question_id": 81, "category": "writing", "turns": ["Write a poem"]},
    ]
    found = pool.parse(enumerate(questions, start=1), instructions(format="mtbench"), references)
    assert [r.reference for r in found.rows] == ["x = 4", None]


def test_a_malformed_reference_file_names_its_field_and_line() -> None:
    lines = enumerate([{"question_id": 1, "choices": [{"turns": ["a"]}]}, {"question_id": 2}], 1)
    with pytest.raises(BadInput, match=r"instructions.referenceSource file:///r.jsonl line 2"):
        pool.parse_references(lines, "file:///r.jsonl")


def test_a_pool_without_a_usable_line_says_what_each_line_needs(tmp_path: Path) -> None:
    source = tmp_path / "pool.jsonl"
    source.write_text(json.dumps({"prompt": "p"}) + "\n")
    spec_ = api.InstructionsSpec.model_validate(
        {"source": source.as_uri(), "field": "prompt", "categoryField": "kind"}
    )
    with pytest.raises(BadInput, match=r"non-empty string under 'prompt' and 'kind'.*\[1\]"):
        pool.read(spec_, seed=0, storage=None)


def test_choose_matches_categories_case_insensitively_and_keeps_references() -> None:
    run_spec = spec(
        instructions={"source": "file:///p.jsonl", "categories": ["Math", "coding"]},
    )
    rows = select.choose(
        task(Stage.SELECT, run_spec),
        ["a", "b", "c"],
        ["MATH", "Coding", "writing"],
        ["ref-a", None, "ref-c"],
    )
    by_text = {r["instruction"]: r for r in rows}
    assert set(by_text) == {"a", "b"}
    assert by_text["a"]["category"] == "Math"
    assert by_text["a"]["reference"] == "ref-a"
    assert by_text["b"]["category"] == "coding"
    assert "reference" not in by_text["b"]


ADMISSION_CASES = [
    pytest.param(
        {"source": "file:///q.jsonl", "referenceSource": "file:///r.jsonl"},
        "spec.instructions.referenceSource",
        id="reference-source-needs-mtbench",
    ),
    pytest.param(
        {"source": "file:///q.jsonl", "format": "mtbench", "categoryField": "kind"},
        "spec.instructions.format",
        id="mtbench-takes-no-category-field",
    ),
    pytest.param(
        {"source": "file:///q.jsonl", "format": "csv"},
        "spec.instructions.format",
        id="unknown-format",
    ),
]


def manifest(instructions_: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "metadata": {"name": "ok", "namespace": "default"},
        "spec": {
            "seedModel": "builtin://tiny-judge",
            "storage": {"uri": "s3://bucket/runs"},
            "instructions": instructions_,
        },
    }


@pytest.mark.parametrize(("instructions_", "field"), ADMISSION_CASES)
def test_admission_refuses_inconsistent_instruction_sources_naming_the_field(
    instructions_: dict[str, Any], field: str
) -> None:
    errors = check_manifest(manifest(instructions_))
    assert any(e.startswith(field) for e in errors), [str(e) for e in errors]


def test_admission_accepts_mtbench_with_references() -> None:
    source = {
        "source": "s3://bucket/mt_bench/question.jsonl",
        "format": "mtbench",
        "referenceSource": "s3://bucket/mt_bench/reference_answer/gpt-4.jsonl",
        "labelModel": "s3://bucket/models/labeller",
    }
    assert check_manifest(manifest(source)) == []


def write_pool(tmp_path: Path, rows: list[dict[str, Any]]) -> str:
    path = tmp_path / "pool.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path.as_uri()


def test_a_pool_with_categories_is_not_labelled_and_references_reach_the_pairs(
    tmp_path: Path,
) -> None:
    """labelModel names a model that does not exist: select succeeds only if it never opens it."""
    rows = [
        {"q": f"What is {i} + {i}?", "kind": "MATH", "gold": str(2 * i)} for i in range(1, 7)
    ] + [{"q": "Write a poem about the sea", "kind": "writing"}]
    run_spec = spec(
        instructions={
            "source": write_pool(tmp_path, rows),
            "field": "q",
            "categoryField": "kind",
            "referenceField": "gold",
            "categories": ["math"],
            "labelModel": MISSING_MODEL,
        },
    )
    storage = MemoryStorage("sources")
    summary = select.run(task(Stage.SELECT, run_spec), storage, 0)
    prefix = stage_prefix("ns", "r", 0, Stage.SELECT)
    selected = [r for _, r in storage.read_jsonl(f"{prefix}/instructions.jsonl")]
    assert summary.instructions == len(selected) == 6
    assert {r["category"] for r in selected} == {"math"}
    assert all(r["reference"] == str(int(r["instruction"].split()[2]) * 2) for r in selected)
    pairs.run(task(Stage.PAIRS, run_spec), storage, 0)
    made = [
        r
        for _, r in storage.read_jsonl(f"{shard_prefix('ns', 'r', 0, Stage.PAIRS, 0)}/pairs.jsonl")
    ]
    assert made, "no pair survived: the check below would prove nothing"
    assert all(p["reference"] == str(int(p["instruction"].split()[2]) * 2) for p in made)


def test_instructions_without_categories_are_labelled_by_the_label_model(
    tmp_path: Path,
) -> None:
    run_spec = spec(
        instructions={
            "source": write_pool(tmp_path, [{"instruction": "What is 1 + 1?"}]),
            "labelModel": MISSING_MODEL,
        },
    )
    with pytest.raises(BadInput, match=f"instructions.labelModel {MISSING_MODEL}"):
        select.run(task(Stage.SELECT, run_spec), MemoryStorage("label"), 0)
