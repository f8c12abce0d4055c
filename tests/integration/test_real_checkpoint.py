"""A real checkpoint end to end: SmolLM2-135M-Instruct on MT-Bench questions, all stages.

`selftaught run` (the real CLI, each stage its own worker process) with the standard prompts, on
a real instruction-tuned model given to ``seedModel`` as its GGUF file, and MT-Bench's own files
as users have them: ``question.jsonl`` (format mtbench), the GPT-4 reference answers joined by
question_id, and the judge prompts file (``#pair-v2``; ``#pair-math-v1`` for rows with a
reference). The model is far too small to bootstrap the loop: what this pins is the real path --
chat template, templates read and used, references reaching the judge, unparsable judgments
counted -- and that the run ends in a clear state (a judge that keeps nothing stops the run
early with reason NothingKept; one that keeps something trains and evaluates).

Measured times: docs/real-models.md ("Checked on a real checkpoint").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.realdata import judge_prompt, mtbench_data, read_jsonl, smollm2_gguf

pytestmark = pytest.mark.slow

NAME = "smol"
MANIFEST = """\
apiVersion: selftaught.dev/v1alpha1
kind: SelfTaughtRun
metadata:
  name: {name}
spec:
  seedModel: {model}
  instructions:
    source: {questions}
    format: mtbench
    referenceSource: {references}
    categories: [Math, writing]
    maxInstructions: 8
  pairs: {{temperature: 0.7, maxNewTokens: 32}}
  judging:
    samplesPerPair: 2
    temperature: 0.7
    maxNewTokens: 40
    template: {prompts}#pair-v2
    referenceTemplate: {prompts}#pair-math-v1
  training:
    learningRate: 1.0e-6
    warmupSteps: 0
    epochs: 1
    batchSize: 1
    microBatchSize: 1
    maxLength: 1024
  evaluation: {{heldOutFraction: 0.25, maxNewTokens: 40}}
  iterations: 1
  worker: {{seed: 0}}
  stages:
    select: {{engine: transformers, gpus: 0, cpu: "1"}}
    pairs: {{engine: transformers, gpus: 0, cpu: "1"}}
    judge: {{engine: transformers, gpus: 0, cpu: "1"}}
    train: {{engine: transformers, gpus: 0, cpu: "1"}}
    evaluate: {{engine: transformers, gpus: 0, cpu: "1"}}
"""


@dataclass
class Finished:
    run_dir: Path
    manifest: Path
    status: dict[str, Any]
    stdout: str
    data: Path

    def artifact(self, iteration: int, stage: str, *parts: str) -> Path:
        root = self.run_dir / "artifacts" / "default" / NAME / f"iteration-{iteration}" / stage
        return root.joinpath(*parts)

    def result(self, job: str) -> dict[str, Any]:
        return dict(json.loads((self.run_dir / "jobs" / job / "result.json").read_text()))


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, smollm2_checkpoint: Path) -> Finished:
    """One whole run (the checkpoint fixture has converted the GGUF into the cache already)."""
    data = mtbench_data()
    tmp_path = tmp_path_factory.mktemp("real")
    manifest = tmp_path / "smol.yaml"
    manifest.write_text(
        MANIFEST.format(
            name=NAME,
            model=smollm2_gguf().as_uri(),
            questions=(data / "mt_bench" / "question.jsonl").as_uri(),
            references=(data / "mt_bench" / "reference_answer" / "gpt-4.jsonl").as_uri(),
            prompts=(data / "judge_prompts.jsonl").as_uri(),
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "selftaught.cli", "run", str(manifest),
         "--workdir", str(tmp_path / "runs"), "--no-progress", "--parallel", "1"],
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run_dir = tmp_path / "runs" / NAME
    status = dict(yaml.safe_load((run_dir / "status.yaml").read_text())["status"])
    return Finished(run_dir, manifest, status, done.stdout, data)


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == kind)


def test_the_run_ends_in_a_clear_state(finished: Finished) -> None:
    status = finished.status
    assert status["phase"] == "Succeeded"
    succeeded = condition(status, "Succeeded")
    judged = status["history"][1]
    assert judged["judgmentsSampled"] > 0
    if succeeded["reason"] == "NothingKept":
        assert judged["judgmentsKept"] == 0
        assert succeeded["message"].startswith("iteration 1: the judge kept no correct judgment")
        assert "judging.template" in succeeded["message"]
        assert "NothingKept iteration 1: the judge kept no correct judgment" in finished.stdout
        assert not finished.artifact(1, "train").exists()  # no train Job was made
        assert status["bestIteration"] == 0  # the seed's own baseline stays
    else:
        assert succeeded["reason"] == "Completed", succeeded
        assert judged["judgmentsKept"] > 0
        assert finished.artifact(1, "train", "model", "config.json").is_file()
        assert 0.0 <= judged["scores"]["heldout"]["accuracy"] <= 1.0
    baseline = status["history"][0]["scores"]["heldout"]
    assert baseline["examples"] >= 1


def test_mtbench_questions_are_read_with_their_categories_and_references(
    finished: Finished,
) -> None:
    questions = read_jsonl(finished.data / "mt_bench" / "question.jsonl")
    gpt4 = read_jsonl(finished.data / "mt_bench" / "reference_answer" / "gpt-4.jsonl")
    reference_of = {r["question_id"]: r["choices"][0]["turns"][0] for r in gpt4}
    by_text = {q["turns"][0]: q for q in questions}
    selected = read_jsonl(finished.artifact(0, "select", "instructions.jsonl"))
    assert len(selected) == 8
    assert {r["category"] for r in selected} <= {"Math", "writing"}  # spelled as the spec
    for row in selected:
        question = by_text[row["instruction"]]
        assert row["category"].lower() == question["category"]
        assert row.get("reference") == reference_of.get(question["question_id"])
    pairs = read_jsonl(finished.artifact(0, "pairs", "shard-00000", "pairs.jsonl"))
    with_reference = [p for p in pairs if "reference" in p]
    assert with_reference, "no math pair survived: reference-guided judging was not exercised"
    assert all(p["category"] == "Math" for p in with_reference)
    assert any("reference" not in p for p in pairs)


def test_judging_uses_the_mtbench_templates_through_the_chat_template(
    finished: Finished, smollm2_checkpoint: Path
) -> None:
    """The stages' own renderer on a real pair: pair-math-v1 for a math pair (with its GPT-4
    reference), pair-v2 for the rest, then SmolLM2's chat template around the system part."""
    from transformers import AutoTokenizer

    from selftaught.api import RunSpec
    from selftaught.phases import Stage
    from selftaught.stages import judge, judging_prompts
    from selftaught.task import StageTask

    spec = RunSpec.model_validate(yaml.safe_load(finished.manifest.read_text())["spec"])
    task = StageTask(
        run=NAME, namespace="default", iteration=1, stage=Stage.JUDGE, shards=1,
        model=spec.seed_model, spec=spec,
    )  # fmt: skip
    prompts = judging_prompts.judge_prompts("standard", judging_prompts.read_templates(task))
    pairs = read_jsonl(finished.artifact(0, "pairs", "shard-00000", "pairs.jsonl"))
    math = next(p for p in pairs if "reference" in p)
    other = next(p for p in pairs if "reference" not in p)
    tokenizer = AutoTokenizer.from_pretrained(smollm2_checkpoint)
    for pair, name in ((math, "pair-math-v1"), (other, "pair-v2")):
        messages = judge.render(prompts, pair, "A")
        assert messages[0] == {"role": "system", "content": judge_prompt(finished.data, name)[
            "system_prompt"]}  # fmt: skip
        user = messages[-1]["content"]
        assert pair["chosen"] in user
        assert pair.get("reference", "") in user  # the GPT-4 reference (math) or nothing
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert text.startswith("<|im_start|>system\n" + messages[0]["content"])
        assert text.endswith("<|im_start|>assistant\n")


def test_unparsable_judgments_are_counted(finished: Finished) -> None:
    summaries = finished.result(f"{NAME}-i1-judge-a0")["summaries"]
    summary = summaries["0"]
    assert summary["invalid"] >= 1  # a 135M model rarely ends with [[A]] or [[B]]
    rejected = sum(summary[k] for k in ("invalid", "wrong", "bothMarkers", "ties"))
    assert summary["kept"] <= summary["pairs"]
    assert rejected <= summary["sampled"]
    assert finished.status["history"][1]["judgmentsSampled"] == summary["sampled"]
    baseline = finished.status["history"][0]["scores"]["heldout"]
    assert 0 <= baseline["invalid"] <= baseline["examples"]
