"""The capacity check on whole specs: verdicts, the fixes it names, the planner's refusal, and the
``selftaught plan`` command (table, --json, --write, exit codes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from selftaught import sizing
from selftaught.cli import main
from selftaught.manifests import load_run
from selftaught.phases import ConditionType, Phase, Reason, Stage
from selftaught.plan import plan
from selftaught.plan_command import architecture_block
from tests.unit.planning import T0, make_run
from tests.unit.test_capacity import LLAMA3_8B, LLAMA3_70B

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "examples" / "paper-scale.yaml"
CONFIG_70B = ROOT / "tests" / "fixtures" / "models" / "llama-3-70b" / "config.json"
H100 = {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}


def gpu_stages(**train: Any) -> dict[str, Any]:
    stage = {"gpus": 8, "tensorParallel": 8, "nodeSelector": H100}
    return {
        "select": stage,
        "pairs": stage,
        "judge": stage,
        "evaluate": stage,
        "train": {"gpus": 8, "nodes": 2, "nodeSelector": H100, **train},
    }


def verdicts(fits: list[sizing.StageFit]) -> dict[str, str]:
    return {fit.stage.value: fit.verdict for fit in fits}


def test_paper_scale_example_fits_by_its_own_estimate() -> None:
    from selftaught.capacity import Architecture

    arch = Architecture.from_config(json.loads(CONFIG_70B.read_text()))
    fits = sizing.check(load_run(PAPER).spec, arch)
    assert set(verdicts(fits).values()) == {sizing.FITS}, [f.why for f in fits]
    train = next(f for f in fits if f.stage is Stage.TRAIN)
    assert "sharded" in train.setup


def test_70b_on_two_h100_nodes_does_not_fit_and_names_every_fix() -> None:
    spec = make_run(stages=gpu_stages(), training={"maxLength": 8192}).spec
    train = sizing.check_stage(spec, Stage.TRAIN, LLAMA3_70B)
    assert train.verdict == sizing.DOES_NOT_FIT
    assert train.fixes == [
        "stages.train.nodes: 4",
        "training.sharding.offloadOptimizer: true",
        "training.lora.enabled: true",
    ]
    assert "79.6 GiB" in train.why
    assert "NVIDIA-H100-80GB-HBM3" in train.why


def test_sharding_block_decides_the_train_setup() -> None:
    def setup(**sharding: Any) -> sizing.TrainSetup:
        training = {"maxLength": 8192, "sharding": sharding}
        return sizing.train_setup(make_run(stages=gpu_stages(), training=training).spec)

    assert (setup().sharded, setup().offload, setup().ranks) == (True, False, 16)  # auto
    full = setup(strategy="full", offloadOptimizer=True)
    assert (full.sharded, full.offload) == (True, True)
    assert setup(strategy="none").sharded is False
    one = make_run(stages=gpu_stages(nodes=1, gpus=1), training={"maxLength": 8192}).spec
    assert sizing.train_setup(one).sharded is False  # auto: one rank is not sharded


def test_tensor_parallel_fix_for_a_model_too_big_for_one_gpu() -> None:
    stages = gpu_stages()
    stages["judge"] = {"gpus": 8, "tensorParallel": 1, "nodeSelector": H100}
    judge = sizing.check_stage(make_run(stages=stages).spec, Stage.JUDGE, LLAMA3_70B)
    assert judge.verdict == sizing.DOES_NOT_FIT
    # TP 2: 65.7 GiB of weights + 16 x 6656 tokens x 160 KiB of KV (16.2 GiB) > 71.7 GiB;
    # TP 4: 32.9 + 8.1 GiB fits.
    assert judge.fixes == ["stages.judge: {tensorParallel: 4}"]


@pytest.mark.parametrize(
    ("stage", "verdict"),
    [
        pytest.param({"gpus": 0, "engine": "transformers"}, sizing.NOT_CHECKED, id="cpu"),
        pytest.param({"gpus": 1}, sizing.UNKNOWN_CARD, id="no-label"),
        pytest.param({"gpus": 1, "gpuMemory": "24Gi"}, sizing.FITS, id="override-fits-8b"),
        pytest.param({"gpus": 1, "gpuMemory": "8Gi"}, sizing.DOES_NOT_FIT, id="override-small"),
    ],
)
def test_verdict_per_card_source(stage: dict[str, Any], verdict: str) -> None:
    spec = make_run(stages={"select": stage}).spec
    assert sizing.check_stage(spec, Stage.SELECT, LLAMA3_8B).verdict == verdict


def test_offload_needs_host_memory_in_the_pod() -> None:
    fit = sizing.StageFit(Stage.TRAIN, 8, "", sizing.capacity.Estimate(host_bytes=70 * 2**30),
                          None, sizing.FITS, "")  # fmt: skip
    res = make_run(stages=gpu_stages(memory="256Gi")).spec.stages.train
    checked = sizing._check_host(fit, res, Stage.TRAIN)
    assert checked.verdict == sizing.DOES_NOT_FIT
    assert "560.0 GiB of host memory per pod > memory 256Gi" in checked.why


def arch_block() -> dict[str, Any]:
    return architecture_block(LLAMA3_70B)


def test_planner_refuses_a_run_that_cannot_fit_before_any_job() -> None:
    run = make_run(
        stages=gpu_stages(), training={"maxLength": 8192}, modelArchitecture=arch_block()
    )
    result = plan(run, [], T0)
    assert result.creates == []
    assert result.status.phase == Phase.FAILED
    failed = {c.type: c for c in result.status.conditions}[ConditionType.FAILED]
    assert failed.reason == Reason.INSUFFICIENT_GPU_MEMORY
    for part in ("stage train", "NVIDIA-H100-80GB-HBM3", "79.6 GiB", "113.0 GiB",
                 "stages.train.nodes: 4", "offloadOptimizer", "lora"):  # fmt: skip
        assert part in failed.message, part


def test_a_refused_run_stays_failed_quietly_until_its_spec_fits() -> None:
    refused = make_run(
        stages=gpu_stages(), training={"maxLength": 8192}, modelArchitecture=arch_block()
    )
    failed = refused.model_copy(update={"status": plan(refused, [], T0).status})
    again = plan(failed, [], T0)
    assert (again.status.phase, again.events, again.creates) == (Phase.FAILED, [], [])
    repaired = make_run(
        stages=gpu_stages(nodes=4), training={"maxLength": 8192}, modelArchitecture=arch_block()
    ).model_copy(update={"status": failed.status})
    assert [c.task.stage for c in plan(repaired, [], T0).creates] == [Stage.SELECT]


def test_planner_starts_a_run_that_fits_or_carries_no_architecture() -> None:
    fitting = make_run(stages=gpu_stages(nodes=4), modelArchitecture=arch_block())
    unknown = make_run(stages=gpu_stages(), training={"maxLength": 8192})
    for run in (fitting, unknown):
        assert [c.task.stage for c in plan(run, [], T0).creates] == [Stage.SELECT]


# ------------------------------------------------------------------------- selftaught plan


def test_plan_command_prints_the_table_and_exits_0_when_all_fit(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["plan", str(PAPER), "--model-config", str(CONFIG_70B)]) == 0
    out = capsys.readouterr().out
    assert "70.55 B parameters" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:7]}
    assert rows["train"][1:5] == ["8", "76.9", "79.6", "fits"]
    assert rows["judge"][1:5] == ["8", "20.8", "71.7", "fits"]


def test_plan_command_exits_1_with_the_fixes_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = yaml.safe_load(PAPER.read_text())
    document["spec"]["stages"]["train"]["nodes"] = 2
    manifest = tmp_path / "two-nodes.yaml"
    manifest.write_text(yaml.safe_dump(document))
    assert main(["plan", str(manifest), "--model-config", str(CONFIG_70B)]) == 1
    out = capsys.readouterr().out
    assert "would fit with: stages.train.nodes: 4" in out
    assert main(["plan", str(manifest), "--model-config", str(CONFIG_70B), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    train = next(row for row in report["stages"] if row["stage"] == "train")
    assert train["verdict"] == "does not fit"
    assert train["estimateBytes"] > train["cardBytes"] == 81_559 * 2**20


def test_plan_command_without_a_reachable_config_says_which_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["plan", str(PAPER)]) == 2
    assert "--model-config" in capsys.readouterr().err


def test_plan_command_reads_a_local_model_dir_and_the_tiny_judge(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(CONFIG_70B.read_text())
    document = yaml.safe_load(PAPER.read_text())
    document["spec"]["seedModel"] = model.as_uri()
    manifest = tmp_path / "local.yaml"
    manifest.write_text(yaml.safe_dump(document))
    assert main(["plan", str(manifest)]) == 0
    assert f"config: {model / 'config.json'}" in capsys.readouterr().out
    assert main(["plan", str(ROOT / "examples" / "quickstart.yaml")]) == 0  # CPU stages
    assert "builtin://tiny-judge" in capsys.readouterr().out


def test_plan_write_fills_model_architecture_for_the_operator(tmp_path: Path) -> None:
    document = yaml.safe_load(PAPER.read_text())
    document["spec"]["stages"]["train"]["nodes"] = 2
    manifest, written = tmp_path / "in.yaml", tmp_path / "out.yaml"
    manifest.write_text(yaml.safe_dump(document))
    main(["plan", str(manifest), "--model-config", str(CONFIG_70B), "--write", str(written)])
    run = load_run(written)
    assert run.spec.model_architecture is not None
    assert run.spec.model_architecture.hidden_size == 8192
    refused = sizing.refusal(run.spec)
    assert refused is not None
    assert refused.startswith("stage train does not fit")


def test_selftaught_run_refuses_a_misfit_before_starting_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(CONFIG_70B.read_text())
    document = yaml.safe_load(PAPER.read_text())
    document["spec"]["seedModel"] = model.as_uri()
    document["spec"]["stages"]["train"]["nodes"] = 2
    manifest = tmp_path / "two-nodes.yaml"
    manifest.write_text(yaml.safe_dump(document))
    workdir = tmp_path / "runs"
    assert main(["run", str(manifest), "--workdir", str(workdir)]) == 1
    assert "stage train does not fit its GPUs" in capsys.readouterr().err
    assert not workdir.exists()  # no state, no stage process


def test_docs_show_the_table_the_command_prints(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    config = str(CONFIG_70B.relative_to(ROOT))
    main(["plan", "examples/paper-scale.yaml", "--model-config", config])
    assert capsys.readouterr().out in (ROOT / "docs" / "scale.md").read_text()


def test_written_architecture_gives_the_operator_the_same_estimate() -> None:
    config = json.loads(CONFIG_70B.read_text())
    from selftaught.capacity import Architecture

    arch = Architecture.from_config(config)
    carried = make_run(stages=gpu_stages(), modelArchitecture=architecture_block(arch)).spec
    assert sizing.architecture_of(carried) == arch
