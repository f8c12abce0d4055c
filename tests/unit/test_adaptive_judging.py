"""The judge stage with judging.sampling: adaptive against fixed, on a seeded fake judge."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from selftaught.api import JudgingSpec, RunSpec
from selftaught.artifacts import shard_prefix
from selftaught.phases import Stage
from selftaught.stages import judge
from selftaught.stages.common import LoadedModel
from tests.unit.stage_env import task
from tests.unit.test_judging_rules import run_spec, stored_pairs

_ANSWER_A = re.compile(r"\[Answer A\]\n(good|bad)-(\d+)")


class SeededJudge:
    """Each sample is a hash of (prompt, seed, index): right with probability ``skill[pair]``
    (pairs beyond the table: 0.6), 5 tokens a sample. Deterministic given the seed, as the
    engine contract requires, and different per round seed."""

    def __init__(self, skill: dict[int, float] | None = None) -> None:
        self.skill = skill or {}
        self.calls: list[tuple[int, int, int]] = []  # (prompts, n, seed)
        self.last_generated_tokens = 0

    def generate(
        self, conversations: Sequence[Sequence[dict[str, str]]], *, n: int, seed: int, **_: Any
    ) -> list[list[str]]:
        self.calls.append((len(conversations), n, seed))
        out = []
        for conversation in conversations:
            text = conversation[-1]["content"]
            found = _ANSWER_A.search(text)
            assert found
            winner, pair = ("A" if found.group(1) == "good" else "B"), int(found.group(2))
            loser = "B" if winner == "A" else "A"
            samples = []
            for j in range(n):
                digest = hashlib.sha256(f"{text}/{seed}/{j}".encode()).digest()
                right = digest[0] / 256 < self.skill.get(pair, 0.6)
                samples.append(f"so it is [[{winner if right else loser}]]")
            out.append(samples)
        self.last_generated_tokens = 5 * n * len(conversations)
        return out


def judged(
    spec: RunSpec, monkeypatch: pytest.MonkeyPatch, engine: SeededJudge, pairs: int = 40
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    storage = stored_pairs(pairs)
    monkeypatch.setattr(
        judge, "open_engine", lambda _task: LoadedModel(engine, "standard", Path("/unused"))
    )
    summary = judge.run(task(Stage.JUDGE, spec, iteration=1), storage, 0).to_wire()
    prefix = shard_prefix("ns", "r", 1, Stage.JUDGE, 0)
    return summary, [row for _, row in storage.read_jsonl(f"{prefix}/judgments.jsonl")]


def adaptive(samples: int = 15, round_size: int = 1, **more: Any) -> RunSpec:
    return run_spec(
        judging={
            "samplesPerPair": samples,
            "sampling": "adaptive",
            "roundSize": round_size,
            **more,
        }
    )


def test_fixed_sampling_is_still_one_call_of_n_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = SeededJudge()
    summary, _ = judged(run_spec(judging={"samplesPerPair": 15}), monkeypatch, engine)
    assert [(p, n) for p, n, _ in engine.calls] == [(40, 15)]
    assert summary["sampled"] == 600
    assert summary["rounds"] == 1
    assert summary["generatedTokens"] == 3000


def test_adaptive_keeps_a_pair_after_its_first_correct_judgment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = SeededJudge(skill=dict.fromkeys(range(40), 1.0))  # always right
    summary, kept = judged(adaptive(round_size=2), monkeypatch, engine)
    assert [(p, n) for p, n, _ in engine.calls] == [(40, 2)]
    assert summary["sampled"] == 80
    assert summary["kept"] == len(kept) == 40
    assert summary["generatedTokens"] == 400


def test_adaptive_never_exceeds_samples_per_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    skill = {0: 0.0, 1: 0.0, **{i: 1.0 for i in range(2, 10)}}  # pairs 0 and 1 never right
    engine = SeededJudge(skill)
    summary, kept = judged(adaptive(samples=5, round_size=2), monkeypatch, engine, pairs=10)
    assert [(p, n) for p, n, _ in engine.calls] == [(10, 2), (2, 2), (2, 1)]
    assert summary["sampled"] == 8 * 2 + 2 * 5
    assert sorted(int(r["pairId"]) for r in kept) == list(range(2, 10))
    assert summary["wrong"] == 10


def test_adaptive_keeps_the_same_pairs_as_fixed_for_a_decent_judge(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With N = 15 and a 60 % judge, both keep every pair (P(no correct) = 0.4^15 ~ 1e-6);
    adaptive draws ~1/0.6 samples per pair instead of 15."""
    fixed, fixed_kept = judged(run_spec(judging={"samplesPerPair": 15}), monkeypatch, SeededJudge())
    adapt, adapt_kept = judged(adaptive(), monkeypatch, SeededJudge())
    assert {r["pairId"] for r in fixed_kept} == {r["pairId"] for r in adapt_kept}
    assert fixed["generatedTokens"] / fixed["kept"] >= 5 * adapt["generatedTokens"] / adapt["kept"]
    assert all(r["completion"][0]["content"].endswith(f"[[{r['winner']}]]") for r in adapt_kept)


def test_a_retried_adaptive_shard_reproduces_its_output(monkeypatch: pytest.MonkeyPatch) -> None:
    skill = {i: 0.1 + 0.02 * i for i in range(40)}
    spec = adaptive(round_size=2, bothOrders=True)
    first = judged(spec, monkeypatch, SeededJudge(skill))
    retry = judged(spec, monkeypatch, SeededJudge(skill))
    assert first == retry
    assert first[0]["rounds"] > 1


def test_sampling_names_are_exactly_fixed_and_adaptive() -> None:
    assert JudgingSpec().sampling == "fixed"
    with pytest.raises(ValueError, match="sampling"):
        run_spec(judging={"sampling": "Adaptive"})
    with pytest.raises(ValueError, match=r"roundSize|round_size"):
        run_spec(judging={"roundSize": 0})


def test_an_empty_shard_draws_nothing_and_costs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = SeededJudge()
    summary, kept = judged(adaptive(), monkeypatch, engine, pairs=0)
    assert (summary.get("sampled", 0), summary.get("generatedTokens", 0), kept) == (0, 0, [])
    assert engine.calls == []
