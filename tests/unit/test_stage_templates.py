"""Templates for pairs and select: a user's template changes the prompt the engine receives,
a bad one fails the stage naming its field before any model loads, and select's fit check
measures the prompts the later stages really send (table-driven where it helps)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from selftaught.api import RunSpec
from selftaught.artifacts import stage_prefix
from selftaught.phases import Stage
from selftaught.pod import BadInput
from selftaught.stages import pairs, prompt_files, select
from selftaught.stages.common import LoadedModel
from selftaught.storage import MemoryStorage
from tests.unit.stage_env import task


class RecordingEngine:
    """An :class:`Engine` that answers every prompt with ``reply`` and records what it was sent;
    a prompt's length is its word count, against ``context_length``."""

    def __init__(self, reply: str = "math", context_length: int | None = None) -> None:
        self.reply = reply
        self.context_length = context_length
        self.sent: list[list[dict[str, str]]] = []
        self.last_generated_tokens = 0

    def prompt_lengths(self, conversations: Sequence[Sequence[dict[str, str]]]) -> list[int]:
        return [sum(len(m["content"].split()) for m in c) for c in conversations]

    def generate(
        self, conversations: Sequence[Sequence[dict[str, str]]], *, n: int, **_: Any
    ) -> list[list[str]]:
        self.sent.extend([dict(m) for m in c] for c in conversations)
        return [[f"{self.reply} {len(self.sent)}"] * n for _ in conversations]


def run_spec(tmp_path: Path, **sections: dict[str, Any]) -> RunSpec:
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps({"instruction": f"add {i} {i}"}) + "\n" for i in range(4)))
    instructions = {"source": pool.as_uri(), "categories": ["math"]}
    return RunSpec.model_validate(
        {
            "seedModel": "file:///unused-model",
            "storage": {"uri": "file:///unused"},
            "instructions": {**instructions, **sections.pop("instructions", {})},
            "pairs": {"maxNewTokens": 4, **sections.pop("pairs", {})},
            "judging": {"maxNewTokens": 4, **sections.pop("judging", {})},
            "evaluation": {"maxNewTokens": 4},
            "stages": {s: {"engine": "transformers", "gpus": 0} for s in Stage},
        }
    )


def write(tmp_path: Path, name: str, document: dict[str, str]) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return path.as_uri()


def use(monkeypatch: pytest.MonkeyPatch, module: Any, engine: RecordingEngine) -> None:
    monkeypatch.setattr(
        module, "open_engine", lambda *_a: LoadedModel(engine, "standard", Path("/unused"))
    )


def selected(storage: MemoryStorage) -> list[dict[str, Any]]:
    prefix = stage_prefix("ns", "r", 0, Stage.SELECT)
    return [row for _, row in storage.read_jsonl(f"{prefix}/instructions.jsonl")]


def test_select_labels_with_the_users_template_and_its_categories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = write(
        tmp_path,
        "label.yaml",
        {"system": "Label it.", "user": "Pick one of [{categories}] for: {instruction}"},
    )
    spec = run_spec(tmp_path, instructions={"labelTemplate": uri, "categories": ["math", "Poem"]})
    engine = RecordingEngine(reply="math")
    use(monkeypatch, select, engine)
    storage = MemoryStorage("label")
    select.run(task(Stage.SELECT, spec), storage, 0)
    assert engine.sent, "the model labelled nothing: the check below would prove nothing"
    for conversation in engine.sent:
        assert conversation[0] == {"role": "system", "content": "Label it."}
        assert conversation[1]["content"].startswith(
            "Pick one of [coding, math, reasoning, safety, chat, other, Poem] for: add "
        )
    assert {row["category"] for row in selected(storage)} == {"math"}


def test_pairs_asks_for_the_other_instruction_with_the_users_template(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = write(tmp_path, "similar.yaml", {"user": "Twist this: {instruction}"})
    spec = run_spec(tmp_path, pairs={"template": uri})
    storage = MemoryStorage("pairs")
    with storage.output(stage_prefix("ns", "r", 0, Stage.SELECT)) as out:
        row = {"id": 0, "instruction": "q0", "category": "math", "split": "train"}
        out.write_jsonl("instructions.jsonl", [row])
    engine = RecordingEngine(reply="text")
    use(monkeypatch, pairs, engine)
    summary = pairs.run(task(Stage.PAIRS, spec), storage, 0)
    contents = [c[-1]["content"] for c in engine.sent]
    # answer x, ask for x' with the template, answer x'
    assert contents[0] == "q0"
    assert contents[1] == "Twist this: q0"
    assert summary.pairs == 1


BAD: list[tuple[str, str, dict[str, str] | None, str]] = [
    (
        "pairs-unknown-placeholder",
        "pairs",
        {"user": "{instruction} {answer}"},
        r"spec\.pairs\.template \(file://.*\): user part: unknown placeholder \{answer\}; "
        r"allowed: \{instruction\}",
    ),
    (
        "pairs-missing-instruction",
        "pairs",
        {"user": "Write something."},
        r"spec\.pairs\.template .*missing placeholder\(s\) \{instruction\}",
    ),
    ("pairs-absent", "pairs", None, r"spec\.pairs\.template .*cannot be read"),
    (
        "label-judging-placeholder",
        "instructions",
        {"user": "{instruction} {answer_a}"},
        r"spec\.instructions\.labelTemplate .*unknown placeholder \{answer_a\}; "
        r"allowed: \{instruction\}, \{categories\}",
    ),
]


@pytest.mark.parametrize(
    ("section", "document", "message"), [pytest.param(*b[1:], id=b[0]) for b in BAD]
)
def test_a_bad_template_fails_the_stage_naming_the_field_before_any_model_loads(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    section: str,
    document: dict[str, str] | None,
    message: str,
) -> None:
    uri = (tmp_path / "absent.yaml").as_uri() if document is None else None
    uri = uri or write(tmp_path, "t.yaml", document or {})
    field = "template" if section == "pairs" else "labelTemplate"
    spec = run_spec(tmp_path, **{section: {field: uri}})

    def no_model(*_args: Any) -> LoadedModel:
        raise AssertionError("the model was loaded before the template was checked")

    monkeypatch.setattr(select, "open_engine", no_model)
    monkeypatch.setattr(pairs, "open_engine", no_model)
    storage = MemoryStorage("bad")
    with storage.output(stage_prefix("ns", "r", 0, Stage.SELECT)) as out:
        out.write_jsonl("instructions.jsonl", [{"id": 0, "instruction": "q", "split": "train"}])
    stage = pairs if section == "pairs" else select
    with pytest.raises(BadInput, match=message):
        stage.run(task(Stage.PAIRS if section == "pairs" else Stage.SELECT, spec), storage, 0)


def long_judging_template(tmp_path: Path) -> str:
    padding = " ".join(["word"] * 200)
    return write(tmp_path, "judge.yaml", {"user": padding + " {question} {answer_a} {answer_b}"})


@pytest.mark.parametrize(
    ("template", "kept"),
    [
        pytest.param(False, 4, id="built-in-prompt-fits"),
        pytest.param(True, 0, id="long-user-template-does-not"),
    ],
)
def test_select_fit_check_measures_the_judging_prompt_the_judge_will_send(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, template: bool, kept: int
) -> None:
    """The built-in judging prompt is ~120 words; a context of 160 fits it with its 12 tokens
    of answers and verdict, and does not fit a user template of 200 words."""
    judging = {"template": long_judging_template(tmp_path)} if template else {}
    spec = run_spec(tmp_path, judging=judging)
    engine = RecordingEngine(reply="math", context_length=160)
    model = LoadedModel(engine, "standard", Path("/unused"))
    rows = select.read_pool(task(Stage.SELECT, spec), MemoryStorage("fit")).rows
    prompts_ = select.SelectPrompts.read(task(Stage.SELECT, spec))
    assert sum(select.fit_the_context(task(Stage.SELECT, spec), model, rows, prompts_)) == kept


def test_a_configmap_template_is_read_from_its_mounted_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mounted = tmp_path / "prompts"
    mounted.mkdir()
    (mounted / "similar.yaml").write_text(json.dumps({"user": "Mounted: {instruction}"}))
    monkeypatch.setenv(prompt_files.ROOT_ENV, str(tmp_path))
    spec = run_spec(tmp_path, pairs={"template": "configmap://prompts/similar.yaml"})
    template = prompt_files.read_field(task(Stage.PAIRS, spec), "spec.pairs.template")
    assert template is not None
    assert template.fill({"instruction": "x"}) == [{"role": "user", "content": "Mounted: x"}]
    absent = run_spec(tmp_path, pairs={"template": "configmap://prompts/other.yaml"})
    with pytest.raises(BadInput, match=r"spec\.pairs\.template .*not mounted"):
        prompt_files.read_field(task(Stage.PAIRS, absent), "spec.pairs.template")
