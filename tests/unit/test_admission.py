"""Admission matches Kubernetes: what the API server would refuse in a Job is refused in the run.

Every value that ends up in a Job or pod is checked with Kubernetes' own grammar (quantities,
DNS-1123 names, label keys and values, Secret keys, tolerations, image references, paths), and
what Kubernetes accepts (``cpu: 4`` as an integer) is accepted. Messages name the field, the
value and the rule in the API server's words, and no input crashes the validator.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from kubernetes.utils import parse_quantity

from selftaught import api, kubegrammar, names
from selftaught.crd import custom_resource_definition
from selftaught.validation import FieldError, admit, check_manifest
from tests.unit.test_crd import DELETE, base, with_spec


def stage(**fields: Any) -> dict[str, Any]:
    return with_spec(stages={"select": fields})


def named(name: Any) -> dict[str, Any]:
    document = base()
    document["metadata"]["name"] = name
    return document


def s3_keys(*, name: str = "creds", key: str = "id") -> dict[str, Any]:
    refs = {"accessKeyId": {"name": name, "key": key}, "secretAccessKey": {"name": "s", "key": "k"}}
    return with_spec(storage={"uri": "s3://bucket/a", "s3": refs})


def claim(**fields: Any) -> dict[str, Any]:
    return with_spec(storage={"uri": "file:///artifacts/x", "volumeClaim": fields})


SEL = "spec.stages.select"

#: (id, manifest, field, words the message must contain)
REFUSED: list[tuple[str, dict[str, Any], str, str]] = [
    ("memory-negative", stage(memory="-1Gi"), f"{SEL}.memory", "non-negative quantity"),
    ("memory-two-dots", stage(memory="1.2.3Gi"), f"{SEL}.memory", "quantity"),
    ("memory-suffix-typo", stage(memory="10Gii"), f"{SEL}.memory", "quantity"),
    ("cpu-negative-string", stage(cpu="-2"), f"{SEL}.cpu", '"-2"'),
    ("cpu-negative-integer", stage(cpu=-2), f"{SEL}.cpu", "greater than or equal to 0"),
    ("cpu-float", stage(cpu=1.5), f"{SEL}.cpu", "must be of type integer/string"),
    (
        "secret-name-spaces",
        s3_keys(name="Bad Name!"),
        "spec.storage.s3.accessKeyId.name",
        "RFC 1123",
    ),
    ("secret-key-slash", s3_keys(key="a/b c"), "spec.storage.s3.accessKeyId.key", "config key"),
    ("secret-key-dotdot", s3_keys(key="..x"), "spec.storage.s3.accessKeyId.key", "'..'"),
    ("queue-name-64", stage(queueName="q" * 64), f"{SEL}.queueName", "more than 63 bytes"),
    ("queue-name-not-dns", stage(queueName="Team Q"), f"{SEL}.queueName", "RFC 1123"),
    (
        "node-selector-key-space",
        stage(nodeSelector={"bad key": "v"}),
        f"{SEL}.nodeSelector",
        "label key",
    ),
    (
        "node-selector-long-prefix",
        stage(nodeSelector={"a" * 254 + "/gpu": "v"}),
        f"{SEL}.nodeSelector",
        "label key",
    ),
    (
        "node-selector-value",
        stage(nodeSelector={"example.com/gpu": "a b"}),
        f"{SEL}.nodeSelector[example.com/gpu]",
        "a valid label",
    ),
    (
        "toleration-exists-with-value",
        stage(tolerations=[{"key": "k", "operator": "Exists", "value": "v"}]),
        f"{SEL}.tolerations[0].value",
        "value must be empty when `operator` is 'Exists'",
    ),
    (
        "toleration-no-key-equal",
        stage(tolerations=[{"operator": "Equal", "value": "v"}]),
        f"{SEL}.tolerations[0].operator",
        "operator must be Exists when `key` is empty",
    ),
    (
        "toleration-seconds-not-noexecute",
        stage(tolerations=[{"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5}]),
        f"{SEL}.tolerations[0].effect",
        "effect must be 'NoExecute'",
    ),
    (
        "toleration-key-space",
        stage(tolerations=[{"key": "a b", "operator": "Exists"}]),
        f"{SEL}.tolerations[0].key",
        "name part",
    ),
    ("priority-class", stage(priorityClassName="Bad_Prio"), f"{SEL}.priorityClassName", "RFC 1123"),
    (
        "service-account",
        with_spec(worker={"serviceAccountName": "Bad SA"}),
        "spec.worker.serviceAccountName",
        "RFC 1123",
    ),
    (
        "pull-secret-empty-string",
        with_spec(worker={"imagePullSecrets": [""]}),
        "spec.worker.imagePullSecrets[0]",
        "must be of type object",
    ),
    (
        "pull-secret-empty-name",
        with_spec(worker={"imagePullSecrets": [{"name": ""}]}),
        "spec.worker.imagePullSecrets[0].name",
        "at least 1 chars",
    ),
    ("image-empty", with_spec(worker={"image": ""}), "spec.worker.image", "at least 1 chars"),
    ("image-spaced", stage(image="my image"), f"{SEL}.image", "no whitespace"),
    ("image-trailing-newline", stage(image="reg/img\n"), f"{SEL}.image", "no whitespace"),
    ("name-trailing-newline", stage(priorityClassName="gpu\n"), f"{SEL}.priorityClassName", ""),
    ("claim-name-empty", claim(claimName=""), "spec.storage.volumeClaim.claimName", '""'),
    (
        "mount-path-tmp",
        claim(claimName="pvc", mountPath="/tmp"),
        "spec.storage.volumeClaim.mountPath",
        "/tmp",
    ),
    (
        "mount-path-under-dev",
        claim(claimName="pvc", mountPath="/dev/shm"),
        "spec.storage.volumeClaim.mountPath",
        "or under them",
    ),
    (
        "mount-path-root",
        claim(claimName="pvc", mountPath="/"),
        "spec.storage.volumeClaim.mountPath",
        "not be /",
    ),
    (
        "mount-path-dotdot",
        claim(claimName="pvc", mountPath="/artifacts/../etc"),
        "spec.storage.volumeClaim.mountPath",
        "'..'",
    ),
    (
        "file-uri-dotdot",
        with_spec(storage={"uri": "file:///tmp/../../etc"}),
        "spec.storage.uri",
        "'..'",
    ),
    ("s3-bucket-dotdot", with_spec(storage={"uri": "s3://a..b/x"}), "spec.storage.uri", "'..'"),
    (
        "s3-bucket-ip",
        with_spec(storage={"uri": "s3://192.168.1.1"}),
        "spec.storage.uri",
        "IP address",
    ),
    ("s3-bucket-xn", with_spec(storage={"uri": "s3://xn--bucket/x"}), "spec.storage.uri", "xn--"),
    (
        "model-cache-dotdot",
        with_spec(worker={"modelCache": "/cache/../etc"}),
        "spec.worker.modelCache",
        "'..'",
    ),
    (
        "category-empty",
        with_spec(instructions={"source": "builtin://arithmetic", "categories": [""]}),
        "spec.instructions.categories[0]",
        "at least 1 chars",
    ),
    ("run-name-underscore", named("Bad_Name"), "metadata.name", "RFC 1123 label"),
    ("run-name-dots", named("a.b"), "metadata.name", "RFC 1123 label"),
    ("run-name-64", named("a" * 64), "metadata.name", "63"),
    ("run-name-254", named("a" * 254), "metadata.name", "63"),
]


@pytest.mark.parametrize(
    ("document", "field", "words"), [pytest.param(d, f, w, id=i) for i, d, f, w in REFUSED]
)
def test_what_kubernetes_refuses_is_refused_naming_field_value_and_rule(
    document: dict[str, Any], field: str, words: str
) -> None:
    errors = check_manifest(document)
    mine = [e for e in errors if e.path == field]
    assert mine, [str(e) for e in errors]
    assert any(words in e.message for e in mine), [str(e) for e in mine]


ACCEPTED: list[tuple[str, dict[str, Any]]] = [
    ("cpu-integer", stage(cpu=4)),
    ("cpu-millis", stage(cpu="500m")),
    ("memory-exponent", stage(memory="1e9")),
    ("memory-plus", stage(memory="+16Gi")),
    ("pull-secret-object", with_spec(worker={"imagePullSecrets": [{"name": "regcred"}]})),
    ("node-selector", stage(nodeSelector={"example.com/gpu": "a100", "kubernetes.io/arch": "x"})),
    (
        "tolerations",
        stage(
            tolerations=[
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                {"operator": "Exists"},
                {"key": "k", "value": "v", "effect": "NoExecute", "tolerationSeconds": 30},
            ]
        ),
    ),
    ("mount-path-artifacts", claim(claimName="pvc.data", mountPath="/artifacts")),
    ("mount-path-like-tmp", claim(claimName="pvc", mountPath="/tmpdata")),
    ("s3-dotted-bucket", with_spec(storage={"uri": "s3://my.bucket-1/runs/a"})),
    ("run-name-63", named("a" * 63)),
    ("secret-key-dotted", s3_keys(key=".dot.key_1-x")),
    ("queue-63", stage(queueName="q" * 63)),
]


@pytest.mark.parametrize("document", [pytest.param(d, id=i) for i, d in ACCEPTED])
def test_what_kubernetes_accepts_is_accepted(document: dict[str, Any]) -> None:
    assert [str(e) for e in check_manifest(document)] == []
    api.SelfTaughtRun.model_validate(admit(document).document)


def test_an_integer_cpu_reaches_the_job_as_kubernetes_reads_it() -> None:
    run = api.SelfTaughtRun.model_validate(admit(stage(cpu=4)).document)
    assert run.spec.stages.select.cpu == "4"
    assert run.spec.stages.select.torch_threads() == 4


QUANTITIES_GOOD = [
    "0",
    "4",
    "500m",
    "16Gi",
    "1.5",
    ".5",
    "5.",
    "1e3",
    "1E3",
    "2u",
    "3n",
    "+1",
    "1k",
]
QUANTITIES_BAD = ["-1Gi", "1.2.3Gi", "10Gii", "-2", "1K", "1 Gi", "", "0x10", "1e", "Gi", "1m5"]


@pytest.mark.parametrize("text", QUANTITIES_GOOD + QUANTITIES_BAD)
def test_the_quantity_pattern_accepts_only_what_kubernetes_parses_as_non_negative(
    text: str,
) -> None:
    """The ``kubernetes`` client's parser is the oracle (it is laxer: it also takes 'K', ' ')."""
    matches = re.match(kubegrammar.QUANTITY, text) is not None
    assert matches == (text in QUANTITIES_GOOD)
    if matches:
        assert parse_quantity(text) >= Decimal(0)


def test_exclusive_bounds_read_as_exclusive() -> None:
    (error,) = check_manifest(with_spec(training={"epochs": 0}))
    assert str(error) == (
        "spec.training.epochs: Invalid value: 0: spec.training.epochs in body should be "
        "greater than 0"
    )


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(with_spec(iterations=1e20), id="float-1e20"),
        pytest.param(with_spec(iterations=10**30), id="int-beyond-int64"),
        pytest.param(with_spec(iterations=-(10**30)), id="negative-beyond-int64"),
        pytest.param(with_spec(training={"epochs": float("inf")}), id="infinity"),
        pytest.param(with_spec(judging={"temperature": float("nan")}), id="nan"),
        pytest.param(with_spec(training={"batchSize": "x", "microBatchSize": 2}), id="string"),
        pytest.param(with_spec(earlyStop={"patience": 2.5}), id="float-in-cel-rule"),
    ],
)
def test_no_numeric_input_crashes_the_validator_or_leaks_cel_internals(
    document: dict[str, Any],
) -> None:
    errors = check_manifest(document)
    assert errors
    for error in errors:
        assert isinstance(error, FieldError)
        text = str(error)
        assert "Token(" not in text
        assert "overload" not in text
        assert "celpy" not in text
        assert 'Invalid value: "object"' not in text


def test_cel_failures_name_the_value_not_object() -> None:
    errors = check_manifest(with_spec(earlyStop={"patience": 3}))
    assert [str(e) for e in errors] == [
        "spec.earlyStop.patience: Invalid value: 3: earlyStop.patience must be smaller than "
        "iterations"
    ]


def test_errors_are_typed_with_the_api_servers_reason_and_value() -> None:
    errors = check_manifest(stage(memory="10Gii", engine="bogus"))
    by_path = {e.path: e for e in errors}
    assert by_path[f"{SEL}.memory"].reason == "FieldValueInvalid"
    assert by_path[f"{SEL}.memory"].value == "10Gii"
    assert by_path[f"{SEL}.engine"].reason == "FieldValueNotSupported"
    missing = check_manifest(with_spec(seedModel=DELETE))
    assert [(e.path, e.reason) for e in missing] == [("spec.seedModel", "FieldValueRequired")]


def test_the_run_name_cap_is_in_kubectl_explain() -> None:
    schema = custom_resource_definition()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    name = schema["properties"]["metadata"]["properties"]["name"]
    assert name["maxLength"] == api.MAX_RUN_NAME == 63
    assert "63 characters" in name["description"]


def test_a_name_at_the_cap_gives_valid_child_names() -> None:
    run = "a" * api.MAX_RUN_NAME
    for iteration, stage_name, attempt in [(0, "select", 0), (999, "evaluate", 99)]:
        job = names.job_name(run, iteration, stage_name, attempt)
        assert names.is_dns1123_label(job)
        assert len(job) <= names.MAX_JOB_NAME
    assert len(names.label_value(run)) <= names.MAX_LABEL


def test_the_suite_of_kubernetes_refusals_covers_the_issue() -> None:
    assert len(REFUSED) >= 29
