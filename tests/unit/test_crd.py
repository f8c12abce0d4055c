"""The CRD in crds/ and the Python types are one truth, and bad manifests are refused by field.

The committed CRD must equal what the types generate; the schema's defaults must be exactly the
pydantic defaults; and a suite of bad manifests, checked the way the API server checks them
(structural schema, then CEL), must each be refused with a message naming the field.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from selftaught import api, crd
from selftaught.validation import admit, check_manifest, spec_schema_of

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "crds" / "selftaughtrun.yaml"


def base() -> dict[str, Any]:
    return {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "metadata": {"name": "ok", "namespace": "default"},
        "spec": {
            "seedModel": "builtin://tiny-judge",
            "storage": {"uri": "s3://bucket/runs"},
            "instructions": {"source": "builtin://arithmetic"},
            "iterations": 3,
            "stages": {"judge": {"engine": "transformers", "gpus": 0}},
        },
    }


def test_committed_crd_is_generated_from_the_types() -> None:
    assert CRD_FILE.read_text() == crd.render_yaml(), (
        "run: selftaught crd -o crds/selftaughtrun.yaml"
    )


def walk(node: dict[str, Any], path: str = "spec"):  # type: ignore[no-untyped-def]
    yield path, node
    for name, child in (node.get("properties") or {}).items():
        yield from walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("part", ["spec", "status"])
def test_every_field_is_described_and_typed(part: str) -> None:
    schema = crd.custom_resource_definition()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in walk(schema["properties"][part], part):
        if path.endswith("[]") or path.endswith("{}"):
            continue  # items and map values are described by their parent
        assert node.get("description"), f"{path} has no description (kubectl explain)"
        assert (
            "type" in node
            or node.get("x-kubernetes-preserve-unknown-fields")
            or node.get("x-kubernetes-int-or-string")
        ), path
        assert not ({"anyOf", "$ref", "allOf", "title"} & set(node)), f"{path} is not structural"


def test_schema_defaults_are_the_pydantic_defaults() -> None:
    """What the API server stores for a minimal manifest is what the operator assumes."""
    document = base()
    document["spec"].pop("stages")
    defaulted = admit(document).document
    assert isinstance(defaulted, dict)
    parsed = api.RunSpec.model_validate(document["spec"]).dump()
    assert defaulted["spec"] == parsed


def test_bounds_in_the_schema_match_the_types() -> None:
    schema = spec_schema_of(crd.custom_resource_definition())
    judging = schema["properties"]["judging"]["properties"]["samplesPerPair"]
    field = api.JudgingSpec.model_fields["samples_per_pair"]
    bounds = {type(m).__name__: m for m in field.metadata}
    assert judging["minimum"] == bounds["Ge"].ge
    assert judging["maximum"] == bounds["Le"].le


@pytest.mark.parametrize(
    "path", ["examples/quickstart.yaml", "examples/paper-scale.yaml", "examples/overhead-long.yaml"]
)
def test_examples_validate_against_the_crd(path: str) -> None:
    document = yaml.safe_load((ROOT / path).read_text())
    document.setdefault("metadata", {}).setdefault("namespace", "default")
    if "storage" not in document["spec"]:
        document["spec"]["storage"] = {"uri": "file:///artifacts"}
    assert check_manifest(document) == []
    api.SelfTaughtRun.model_validate(document)


def with_spec(**changes: Any) -> dict[str, Any]:
    """base() with dotted spec paths set (a value of DELETE removes the key)."""
    document = base()
    for dotted, value in changes.items():
        node = document["spec"]
        *parents, leaf = dotted.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        if value is DELETE:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return document


DELETE = object()

BAD: list[tuple[str, dict[str, Any], str]] = [
    ("iterations-wrong-type", with_spec(iterations="five"), "spec.iterations"),
    ("iterations-zero", with_spec(iterations=0), "spec.iterations"),
    ("iterations-too-many", with_spec(iterations=101), "spec.iterations"),
    ("samples-zero", with_spec(judging__samplesPerPair=0), "spec.judging.samplesPerPair"),
    ("temperature-negative", with_spec(judging__temperature=-0.1), "spec.judging.temperature"),
    ("top-p-zero", with_spec(judging__topP=0), "spec.judging.topP"),
    ("top-p-above-one", with_spec(judging__topP=1.5), "spec.judging.topP"),
    (
        "greedy-with-many-samples",
        with_spec(judging__samplesPerPair=4, judging__temperature=0.0),
        "spec.judging.samplesPerPair",
    ),
    ("unknown-top-level-field", with_spec(judgingg={"x": 1}), "spec.judgingg"),
    ("unknown-nested-field", with_spec(training__lrr=0.1), "spec.training.lrr"),
    ("missing-seed-model", with_spec(seedModel=DELETE), "spec.seedModel"),
    ("missing-instructions", with_spec(instructions=DELETE), "spec.instructions"),
    ("missing-instruction-source", with_spec(instructions={}), "spec.instructions.source"),
    ("storage-uri-http", with_spec(storage={"uri": "http://x/y"}), "spec.storage.uri"),
    (
        "s3-settings-on-file-storage",
        with_spec(storage={"uri": "file:///a", "s3": {"region": "x"}}),
        "spec.storage.s3",
    ),
    (
        "volume-claim-on-s3-storage",
        with_spec(storage={"uri": "s3://bucket/a", "volumeClaim": {"claimName": "pvc"}}),
        "spec.storage.volumeClaim",
    ),
    (
        "access-key-without-secret",
        with_spec(
            storage={"uri": "s3://bucket/a", "s3": {"accessKeyId": {"name": "s", "key": "k"}}}
        ),
        "spec.storage.s3",
    ),
    ("init-from-unknown", with_spec(training__initFrom="random"), "spec.training.initFrom"),
    ("learning-rate-zero", with_spec(training__learningRate=0), "spec.training.learningRate"),
    ("epochs-too-many", with_spec(training__epochs=11), "spec.training.epochs"),
    (
        "micro-batch-above-batch",
        with_spec(training__batchSize=4, training__microBatchSize=8),
        "spec.training.microBatchSize",
    ),
    (
        "batch-not-a-multiple-of-micro-batch",
        with_spec(training__batchSize=16, training__microBatchSize=3),
        "spec.training.microBatchSize",
    ),
    ("lora-rank-zero", with_spec(training={"lora": {"rank": 0}}), "spec.training.lora.rank"),
    (
        "majority-vote-greedy",
        with_spec(evaluation={"majorityVote": 3, "voteTemperature": 0.0}),
        "spec.evaluation.majorityVote",
    ),
    (
        "majority-vote-even-greedy",
        with_spec(evaluation={"majorityVote": 2, "voteTemperature": 0.0}),
        "spec.evaluation.majorityVote",
    ),
    (
        "dataset-scoring-unknown",
        with_spec(evaluation={"datasets": [{"name": "rb", "uri": "s3://b/x", "scoring": "x"}]}),
        "spec.evaluation.datasets[0].scoring",
    ),
    (
        "held-out-everything",
        with_spec(evaluation={"heldOutFraction": 1.0}),
        "spec.evaluation.heldOutFraction",
    ),
    (
        "duplicate-dataset-names",
        with_spec(
            evaluation={
                "datasets": [{"name": "rb", "uri": "s3://b/x"}, {"name": "rb", "uri": "s3://b/y"}]
            }
        ),
        "spec.evaluation.datasets",
    ),
    (
        "dataset-name-with-spaces",
        with_spec(evaluation={"datasets": [{"name": "Bad Name", "uri": "s3://b/x"}]}),
        "spec.evaluation.datasets[0].name",
    ),
    (
        "patience-not-below-iterations",
        with_spec(earlyStop={"patience": 3}),
        "spec.earlyStop.patience",
    ),
    ("metric-unknown", with_spec(earlyStop={"metric": "mmlu"}), "spec.earlyStop.metric"),
    ("engine-unknown", with_spec(stages={"judge": {"engine": "tgi"}}), "spec.stages.judge.engine"),
    (
        "vllm-without-gpus",
        with_spec(stages={"judge": {"engine": "vllm", "gpus": 0}}),
        "spec.stages.judge.engine",
    ),
    (
        "tensor-parallel-above-gpus",
        with_spec(stages={"judge": {"gpus": 2, "tensorParallel": 4}}),
        "spec.stages.judge.tensorParallel",
    ),
    ("train-sharded", with_spec(stages={"train": {"shards": 2}}), "spec.stages.train.shards"),
    (
        "memory-not-a-quantity",
        with_spec(stages={"select": {"memory": "lots"}}),
        "spec.stages.select.memory",
    ),
    (
        "multi-node-without-gpus",
        with_spec(stages={"train": {"nodes": 2, "gpus": 0, "engine": "transformers"}}),
        "spec.stages.train.nodes",
    ),
    (
        "resume-beyond-iterations",
        with_spec(resumeFrom={"iteration": 9, "stage": "judge"}),
        "spec.resumeFrom.iteration",
    ),
    (
        "resume-judge-in-iteration-0",
        with_spec(resumeFrom={"iteration": 0, "stage": "judge"}),
        "spec.resumeFrom.stage",
    ),
    ("categories-empty", with_spec(instructions__categories=[]), "spec.instructions.categories"),
    (
        "max-instructions-negative",
        with_spec(instructions__maxInstructions=-1),
        "spec.instructions.maxInstructions",
    ),
    (
        "toleration-operator-unknown",
        with_spec(stages={"judge": {"tolerations": [{"operator": "Maybe"}]}}),
        "spec.stages.judge.tolerations[0].operator",
    ),
    ("serve-replicas-zero", with_spec(serve={"replicas": 0}), "spec.serve.replicas"),
    ("serve-port-privileged", with_spec(serve={"port": 80}), "spec.serve.port"),
    ("serve-vllm-without-gpu", with_spec(serve={"gpus": 0}), "spec.serve.engine"),
    (
        "serve-tensor-parallel-above-gpus",
        with_spec(serve={"gpus": 1, "tensorParallel": 2}),
        "spec.serve.tensorParallel",
    ),
    (
        "serve-tensor-parallel-on-transformers",
        with_spec(serve={"engine": "transformers", "gpus": 2, "tensorParallel": 2}),
        "spec.serve.tensorParallel",
    ),
    ("serve-unknown-engine", with_spec(serve={"engine": "tgi"}), "spec.serve.engine"),
    ("serve-unknown-field", with_spec(serve={"replica": 2}), "spec.serve.replica"),
]


@pytest.mark.parametrize(("document", "field"), [pytest.param(d, f, id=i) for i, d, f in BAD])
def test_bad_manifest_is_refused_naming_the_field(document: dict[str, Any], field: str) -> None:
    errors = check_manifest(document)
    assert errors, "accepted a bad manifest"
    assert any(e.startswith(field) for e in errors), [str(e) for e in errors]


IMMUTABLE: list[tuple[str, dict[str, Any], str]] = [
    ("seed-model", {"seedModel": "s3://other/model"}, "spec.seedModel"),
    ("storage", {"storage": {"uri": "s3://other/runs"}}, "spec.storage"),
    ("instructions", {"instructions": {"source": "s3://b/other.jsonl"}}, "spec.instructions"),
    ("pairs", {"pairs": {"temperature": 0.1}}, "spec.pairs"),
    (
        "held-out-fraction",
        {"evaluation": {"heldOutFraction": 0.2}},
        "spec.evaluation.heldOutFraction",
    ),
    ("iterations-lowered", {"iterations": 2}, "spec.iterations"),
]


@pytest.mark.parametrize(("change", "field"), [pytest.param(c, f, id=i) for i, c, f in IMMUTABLE])
def test_changing_an_immutable_field_is_refused(change: dict[str, Any], field: str) -> None:
    old = base()
    new = copy.deepcopy(old)
    new["spec"].update(change)
    errors = check_manifest(new, old=old)
    assert any(e.startswith(field) for e in errors), [str(e) for e in errors]


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"iterations": 5}, id="iterations-raised"),
        pytest.param({"judging": {"samplesPerPair": 8, "temperature": 0.9}}, id="judging"),
        pytest.param({"suspend": True}, id="suspend"),
        pytest.param({"evaluation": {"majorityVote": 4}}, id="majority-vote-even"),
        pytest.param({"judging": {"bothOrders": True}}, id="judging-both-orders"),
        pytest.param({"resumeFrom": {"iteration": 1, "stage": "train"}}, id="resume-from"),
    ],
)
def test_mutable_changes_are_accepted(change: dict[str, Any]) -> None:
    old = base()
    new = copy.deepcopy(old)
    new["spec"].update(change)
    assert check_manifest(new, old=old) == []


def test_the_suite_of_bad_manifests_is_large() -> None:
    assert len(BAD) + len(IMMUTABLE) >= 30


def test_whole_numbers_in_number_fields_pass_cel_as_kubectl_sends_them() -> None:
    """kubectl encodes ``temperature: 1.0`` as JSON ``1``; CEL must still compare doubles."""
    document = with_spec(judging={"samplesPerPair": 4, "temperature": 1, "topP": 1})
    assert check_manifest(document) == []
