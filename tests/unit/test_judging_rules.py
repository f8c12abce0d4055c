"""The release's judging rules in the judge and evaluate stages, driven by a scripted judge.

The engine is a fake that answers each judging prompt by a rule of the test (it reads which
answer sits at A from the prompt), so each case pins one behaviour exactly: the two-marker and
tie drop, balance after rejection with both orders, official scoring and majority-vote sampling.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from selftaught.api import RunSpec
from selftaught.artifacts import shard_prefix
from selftaught.phases import Stage
from selftaught.stages import evaluate, judge
from selftaught.stages.common import LoadedModel
from selftaught.storage import MemoryStorage, Storage
from tests.unit.stage_env import task

#: (pair id, winner position shown, sample index) -> judgment text.
Policy = Callable[[int, str, int], str]
_ANSWER_A = re.compile(r"\[Answer A\]\n(good|bad)-(\d+)")


class ScriptedJudge:
    """An :class:`Engine` whose judgments follow a policy; records its sampling settings."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.calls: list[dict[str, Any]] = []
        self.seen: list[str] = []  # the last message of every prompt judged
        self.last_generated_tokens = 0  # one token per word, as a stand-in

    def generate(
        self, conversations: Sequence[Sequence[dict[str, str]]], *, n: int, **settings: Any
    ) -> list[list[str]]:
        self.calls.append({"n": n, **settings})
        out = []
        for conversation in conversations:
            self.seen.append(conversation[-1]["content"])
            found = _ANSWER_A.search(conversation[-1]["content"])
            assert found, conversation
            winner = "A" if found.group(1) == "good" else "B"
            out.append([self.policy(int(found.group(2)), winner, k) for k in range(n)])
        self.last_generated_tokens = sum(len(t.split()) for texts in out for t in texts)
        return out


def run_spec(*, judging: dict[str, Any] | None = None, **evaluation: Any) -> RunSpec:
    return RunSpec.model_validate(
        {
            "seedModel": "file:///unused-model",
            "storage": {"uri": "file:///unused"},
            "instructions": {"source": "s3://b/instructions.jsonl"},
            "judging": {"samplesPerPair": 3, **(judging or {})},
            "evaluation": evaluation,
            "stages": {s: {"engine": "transformers", "gpus": 0} for s in Stage},
        }
    )


def stored_pairs(count: int, split: str = "train") -> MemoryStorage:
    storage = MemoryStorage("rules")
    rows = [
        {
            "id": i,
            "split": split,
            "instruction": f"question {i}",
            "chosen": f"good-{i}",
            "rejected": f"bad-{i}",
        }
        for i in range(count)
    ]
    with storage.output(shard_prefix("ns", "r", 0, Stage.PAIRS, 0)) as out:
        out.write_jsonl("pairs.jsonl", rows)
    return storage


def judge_with(
    policy: Policy, spec: RunSpec, storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, Any], list[dict[str, Any]], ScriptedJudge]:
    engine = ScriptedJudge(policy)
    monkeypatch.setattr(
        judge, "open_engine", lambda _task: LoadedModel(engine, "standard", Path("/unused"))
    )
    summary = judge.run(task(Stage.JUDGE, spec, iteration=1), storage, 0).to_wire()
    prefix = shard_prefix("ns", "r", 1, Stage.JUDGE, 0)
    kept = [row for _, row in storage.read_jsonl(f"{prefix}/judgments.jsonl")]
    return summary, kept, engine


def mixed_habits(pair: int, winner: str, _k: int) -> str:
    """Pair 0 quotes the format (both markers), 1 declares a tie, 2 spaces its marker,
    3 is plainly wrong, every other pair is right."""
    other = "B" if winner == "A" else "A"
    return {
        0: f"Write [[A]] or [[B]]. Verdict: [[{winner}]]",
        1: "Equally good. [[C]]",
        2: f"verdict: [[ {winner} ]]",
        3: f"Reasoning. [[{other}]]",
    }.get(pair, f"Reasoning. [[{winner}]]")


def test_two_markers_ties_and_malformed_markers_are_never_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    summary, kept, _ = judge_with(mixed_habits, run_spec(), stored_pairs(8), monkeypatch)
    assert sorted(row["pairId"] for row in kept) == [4, 5, 6, 7]
    assert summary["bothMarkers"] == summary["ties"] == summary["invalid"] == 3
    assert summary["wrong"] == 3
    assert summary["kept"] == 4
    assert summary["sampled"] == 8 * 3
    for row in kept:
        text = row["completion"][0]["content"]
        assert text.count("[[") == 1
        assert f"[[{row['winner']}]]" in text


def position_biased(pair: int, winner: str, _k: int) -> str:
    """Even pairs: always says A (right only when the winner is shown as A); odd: always right."""
    return "Reasoning. [[A]]" if pair % 2 == 0 else f"Reasoning. [[{winner}]]"


def test_both_orders_balance_the_kept_set_after_rejection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    single, single_rows, _ = judge_with(position_biased, run_spec(), stored_pairs(20), monkeypatch)
    both, both_rows, engine = judge_with(
        position_biased, run_spec(judging={"bothOrders": True}), stored_pairs(20), monkeypatch
    )
    # One order, balanced prompts: the biased judge keeps more A-better judgments.
    assert single["keptWinnerA"] > single["keptWinnerB"]
    assert single["keptWinnerA"] + single["keptWinnerB"] == single["kept"] == len(single_rows)
    # Both orders: every pair judged twice, the kept set balanced, nothing dropped.
    assert both["sampled"] == 2 * 20 * 3
    assert len(engine.calls) == 1
    assert both["keptWinnerA"] == both["keptWinnerB"] == 10
    assert both["droppedForBalance"] == 0
    for row in both_rows:
        shown_a = re.search(r"\[Answer A\]\n(\w+)-", row["prompt"][-1]["content"])
        assert shown_a
        assert (shown_a.group(1) == "good") == (row["winner"] == "A")
        if row["pairId"] % 2 == 0:
            assert row["winner"] == "A"  # the only order the biased pairs were right in


def test_both_orders_drop_the_surplus_of_a_fully_biased_judge(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    summary, kept, _ = judge_with(
        lambda pair, winner, k: "[[A]]" if pair < 9 else f"[[{winner}]]",
        run_spec(judging={"bothOrders": True}),
        stored_pairs(10),
        monkeypatch,
    )
    assert summary["keptWinnerA"] == summary["keptWinnerB"] == 1
    assert summary["droppedForBalance"] == 8
    assert len(kept) == 2


# ------------------------------------------------------------------------------------- evaluate


def write_dataset(tmp_path: Path, subsets: Sequence[str]) -> str:
    path = tmp_path / "rb.jsonl"
    lines = [
        json.dumps({"prompt": f"q {i}", "chosen": f"good-{i}", "rejected": f"bad-{i}", "subset": s})
        for i, s in enumerate(subsets)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path.as_uri()


def evaluate_with(
    policy: Policy, spec: RunSpec, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, Any], ScriptedJudge]:
    engine = ScriptedJudge(policy)
    monkeypatch.setattr(
        evaluate, "open_engine", lambda _task: LoadedModel(engine, "standard", Path("/unused"))
    )
    storage = stored_pairs(4, split="heldout")
    return evaluate.run(task(Stage.EVALUATE, spec, iteration=1), storage, 0).to_wire(), engine


def quoting_judge(pair: int, winner: str, _k: int) -> str:
    """Quotes the format before a verdict that is right; the official reading takes [[A]]."""
    return f'Answer "[[A]]" or "[[B]]". Final: [[{winner}]]'


def test_datasets_are_scored_officially_and_heldout_leniently(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = write_dataset(tmp_path, ["alpacaeval-easy"] * 6 + ["refusals-dangerous"] * 6)
    spec = run_spec(datasets=[{"name": "rb", "uri": uri}])
    summary, _ = evaluate_with(quoting_judge, spec, monkeypatch)
    rb, held = summary["scores"]["rb"], summary["scores"]["heldout"]
    # lenient: the last marker is the (right) verdict
    assert held["scoring"] == "lenient"
    assert held["accuracy"] == 1.0
    # official: "[[A]]" is in every text, so the verdict is A: right only where chosen is A
    assert rb["scoring"] == "official"
    assert rb["accuracy"] < 1.0
    assert rb["partial"] is True
    assert rb["rowsExpected"] == 2985
    assert rb["examples"] == 12
    assert rb["sectionsMissing"] == ["Chat Hard", "Reasoning"]
    assert set(rb["sections"]) == {"Chat", "Safety"}
    assert any("partial RewardBench set (12/2985 rows" in w for w in summary["warnings"])


def test_even_majority_vote_samples_with_the_vote_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = write_dataset(tmp_path, ["alpacaeval-easy"] * 4)
    spec = run_spec(
        majorityVote=4, voteTemperature=0.6, voteTopP=0.8, datasets=[{"name": "rb", "uri": uri}]
    )
    # two right, two unparsable: a tie of the vote between "chosen" and "neither" -> 0.75
    summary, engine = evaluate_with(
        lambda pair, winner, k: f"[[{winner}]]" if k < 2 else "no verdict", spec, monkeypatch
    )
    assert {(c["n"], c["temperature"], c["top_p"]) for c in engine.calls} == {(4, 0.6, 0.8)}
    assert summary["scores"]["rb"]["accuracy"] == pytest.approx(0.75)
    assert summary["scores"]["heldout"]["accuracy"] == 1.0  # lenient: unparsable abstain


def test_single_judgment_uses_the_plain_temperature(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, engine = evaluate_with(quoting_judge, run_spec(temperature=0.0), monkeypatch)
    assert {(c["n"], c["temperature"], c["top_p"]) for c in engine.calls} == {(1, 0.0, 1.0)}


# ---------------------------------------------------------------- templates and references

TEMPLATE_USER = "Q: {question}\n\n[Answer A]\n{answer_a}\n\n[Answer B]\n{answer_b}"


def right(pair: int, winner: str, _k: int) -> str:
    return f"Reasoning. [[{winner}]]"


def with_references(storage: MemoryStorage, which: set[int]) -> MemoryStorage:
    """Give the listed pairs a reference answer (rows as a source with a reference field)."""
    prefix = shard_prefix("ns", "r", 0, Stage.PAIRS, 0)
    found = [row for _, row in storage.read_jsonl(f"{prefix}/pairs.jsonl")]
    with storage.output(prefix) as out:
        out.write_jsonl(
            "pairs.jsonl",
            [{**r, "reference": f"ref-{r['id']}"} if r["id"] in which else r for r in found],
        )
    return storage


def test_judge_uses_the_users_template_with_a_system_part(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "judge.yaml"
    path.write_text(f"system: Be fair.\nuser: {json.dumps(TEMPLATE_USER)}\n")
    spec = run_spec(judging={"template": path.as_uri()})
    _, kept, _ = judge_with(right, spec, stored_pairs(4), monkeypatch)
    assert len(kept) == 4
    for row in kept:
        assert row["prompt"][0] == {"role": "system", "content": "Be fair."}
        assert row["prompt"][1]["content"].startswith(f"Q: question {row['pairId']}\n")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(
            json.dumps({"user": TEMPLATE_USER + " {score}"}),
            r"spec.judging.template \(file://.*\): user part: unknown placeholder \{score\}",
            id="unknown-placeholder",
        ),
        pytest.param(
            json.dumps({"user": "[Answer A]\n{answer_a}"}),
            r"spec.judging.template .*missing placeholder\(s\) \{question\}, \{answer_b\}",
            id="missing-placeholders",
        ),
        pytest.param(None, r"spec.judging.template .*cannot be read", id="file-absent"),
    ],
)
def test_bad_template_fails_the_stage_naming_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str | None, message: str
) -> None:
    from selftaught.pod import BadInput

    path = tmp_path / "judge.json"
    if content is not None:
        path.write_text(content)
    spec = run_spec(judging={"template": path.as_uri()})

    def no_model(_task: Any) -> LoadedModel:
        raise AssertionError("the model was loaded before the template was checked")

    monkeypatch.setattr(judge, "open_engine", no_model)
    monkeypatch.setattr(evaluate, "open_engine", no_model)
    with pytest.raises(BadInput, match=message):
        judge.run(task(Stage.JUDGE, spec, iteration=1), stored_pairs(2), 0)
    with pytest.raises(BadInput, match=message):
        evaluate.run(task(Stage.EVALUATE, spec, iteration=1), stored_pairs(2, "heldout"), 0)


def test_rows_with_a_reference_are_judged_reference_guided(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = with_references(stored_pairs(4), {1, 3})
    _, kept, _ = judge_with(right, run_spec(), storage, monkeypatch)
    for row in kept:
        text = row["prompt"][-1]["content"]
        has_reference = row["pairId"] in (1, 3)
        assert (f"[Reference answer]\nref-{row['pairId']}" in text) is has_reference


def test_reference_template_applies_to_rows_with_a_reference_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [
        {"name": "pair-v2", "system_prompt": "General.", "prompt_template": TEMPLATE_USER},
        {
            "name": "pair-math-v1",
            "system_prompt": "Use the reference.",
            "prompt_template": "Ref: {ref_answer_1}\n" + TEMPLATE_USER,
        },
    ]
    path = tmp_path / "judge_prompts.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    spec = run_spec(
        judging={
            "template": f"{path.as_uri()}#pair-v2",
            "referenceTemplate": f"{path.as_uri()}#pair-math-v1",
        }
    )
    storage = with_references(stored_pairs(4), {2})
    _, kept, _ = judge_with(right, spec, storage, monkeypatch)
    by_pair = {row["pairId"]: row["prompt"] for row in kept}
    assert by_pair[2][0]["content"] == "Use the reference."
    assert by_pair[2][1]["content"].startswith("Ref: ref-2\nQ: question 2")
    assert {by_pair[p][0]["content"] for p in (0, 1, 3)} == {"General."}


def test_reference_template_without_reference_placeholder_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from selftaught.pod import BadInput

    path = tmp_path / "ref.json"
    path.write_text(json.dumps({"user": TEMPLATE_USER}))
    spec = run_spec(judging={"referenceTemplate": path.as_uri()})
    with pytest.raises(BadInput, match=r"spec.judging.referenceTemplate .*\{reference\}"):
        judge_with(right, spec, stored_pairs(2), monkeypatch)


def test_heldout_rows_with_a_reference_are_evaluated_reference_guided(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = ScriptedJudge(right)
    monkeypatch.setattr(
        evaluate, "open_engine", lambda _task: LoadedModel(engine, "standard", Path("/unused"))
    )
    storage = with_references(stored_pairs(3, split="heldout"), {1})
    evaluate.run(task(Stage.EVALUATE, run_spec(), iteration=1), storage, 0)
    guided = [text for text in engine.seen if "[Reference answer]" in text]
    assert len(guided) == 2  # pair 1, in both orders
    assert all("ref-1" in text and "question 1" in text for text in guided)


def dpo_spec(**judging: Any) -> RunSpec:
    spec = run_spec(judging=judging or None)
    training = spec.training.model_copy(update={"method": "dpo"})
    return spec.model_copy(update={"training": training})


def dpo_habits(pair: int, winner: str, k: int) -> str:
    """Per pair, what each of the 3 samples says: 0 always right (no rejected side), 1 always
    wrong (no chosen side), 2 right then a tie then a two-marker text, 3 right, unparsable,
    wrong (the wrong one is preferred as rejected), every other pair right, right, wrong."""
    other = "B" if winner == "A" else "A"
    right, wrong = f"Right. [[{winner}]]", f"Wrong. [[{other}]]"
    script = {
        0: [right, right, right],
        1: [wrong, wrong, wrong],
        2: [right, "Same. [[C]]", f"[[A]] or [[B]]? [[{winner}]]"],
        3: [right, "no verdict", wrong],
    }
    return script.get(pair, [right, right, wrong])[k]


def test_dpo_keeps_a_correct_and_an_incorrect_judgment_of_the_same_prompt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    summary, rows, _ = judge_with(dpo_habits, dpo_spec(), stored_pairs(8), monkeypatch)
    assert sorted(row["pairId"] for row in rows) == [2, 3, 4, 5, 6, 7]
    assert summary["kept"] == 6
    assert summary["droppedWithoutRejected"] == 1  # pair 0: right every time
    assert summary["rejectedNotWrong"] == 1  # pair 2: only a tie or two markers to reject
    by_pair = {row["pairId"]: row for row in rows}
    for row in rows:
        assert set(row) == {"prompt", "chosen", "rejected", "rejectedReason", "pairId", "winner"}
        assert row["prompt"][-1]["role"] == "user"
        assert [m["role"] for m in row["chosen"] + row["rejected"]] == ["assistant"] * 2
        chosen = row["chosen"][0]["content"]
        assert chosen == f"Right. [[{row['winner']}]]"  # only a clean correct verdict is chosen
    assert by_pair[2]["rejectedReason"] in ("tie", "both")
    assert by_pair[3]["rejectedReason"] == "wrong"  # a wrong verdict beats an unparsable one
    assert by_pair[3]["rejected"][0]["content"].startswith("Wrong.")


def test_dpo_with_both_orders_pairs_within_one_prompt_and_balances(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each pair is right and wrong in both orders: every pair is usable, the kept rows balance
    A and B, and chosen and rejected always come from the same rendered prompt."""
    summary, rows, _ = judge_with(
        lambda pair, winner, k: (
            f"[[{winner}]]" if k == 0 else f"[[{'B' if winner == 'A' else 'A'}]]"
        ),
        dpo_spec(bothOrders=True),
        stored_pairs(10),
        monkeypatch,
    )
    assert summary["keptWinnerA"] == summary["keptWinnerB"] == 5
    for row in rows:
        shown_a = re.search(r"\[Answer A\]\n(\w+)-", row["prompt"][-1]["content"])
        assert shown_a
        assert (shown_a.group(1) == "good") == (row["winner"] == "A")
        assert row["chosen"][0]["content"] == f"[[{row['winner']}]]"
        assert row["rejected"][0]["content"] != row["chosen"][0]["content"]


def test_sft_rows_are_unchanged_by_the_dpo_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    summary, rows, _ = judge_with(dpo_habits, run_spec(), stored_pairs(8), monkeypatch)
    assert sorted(row["pairId"] for row in rows) == [0, 2, 3, 4, 5, 6, 7]
    assert all(set(row) == {"prompt", "completion", "pairId", "winner"} for row in rows)
    assert summary["droppedWithoutRejected"] == summary["rejectedNotWrong"] == 0
