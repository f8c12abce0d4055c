"""Loading a manifest for `selftaught run`: the same verdict as the API server, plus the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from selftaught.manifests import ManifestError, load_run

GOOD = """\
apiVersion: selftaught.dev/v1alpha1
kind: SelfTaughtRun
metadata:
  name: local
spec:
  seedModel: builtin://tiny-judge
  instructions:
    source: builtin://arithmetic
  judging:
    samplesPerPair: 4
    temperature: 1.0
  stages:
    judge: {engine: transformers, gpus: 0}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_a_good_manifest_loads_with_defaults(tmp_path: Path) -> None:
    run = load_run(write(tmp_path, GOOD))
    assert run.name == "local"
    assert run.spec.judging.samples_per_pair == 4
    assert run.spec.training.learning_rate == 1e-6
    assert run.spec.storage is None  # the local runner fills in file:// under its workdir


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(
            "samplesPerPair: 4", "samplesPerPair: 0", ":10: spec.judging.samplesPerPair", id="bound"
        ),
        pytest.param(
            "temperature: 1.0",
            "temperature: 0.0",
            ":10: spec.judging.samplesPerPair",
            id="cel-rule",
        ),
        pytest.param("  judging:", "  judgment:", ":9: spec.judgment: unknown field", id="unknown"),
        pytest.param(
            "  judging:",
            "  training: {batchSize: 16, microBatchSize: 3}\n  judging:",
            "spec.training.microBatchSize: Invalid value: 3: batchSize must be a multiple "
            "of microBatchSize",
            id="batch-not-a-multiple-of-micro-batch",
        ),
        pytest.param(
            "engine: transformers, gpus: 0",
            "engine: vllm, gpus: 0",
            "spec.stages.judge.engine: Invalid value",
            id="vllm-needs-gpus",
        ),
    ],
)
def test_a_bad_manifest_names_file_line_and_field(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(ManifestError) as caught:
        load_run(path)
    assert f"{path}" in str(caught.value)
    assert expected in str(caught.value)


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("  instructions:", "  instructions: [unclosed"))
    with pytest.raises(ManifestError, match=r"run.yaml:\d+: not valid YAML"):
        load_run(path)


def test_wrong_api_version_and_missing_file_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"apiVersion: must be selftaught\.dev/v1alpha1"):
        load_run(write(tmp_path, GOOD.replace("v1alpha1", "v1")))
    with pytest.raises(ManifestError, match="cannot read"):
        load_run(tmp_path / "absent.yaml")
