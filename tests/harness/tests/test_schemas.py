"""CRD schema handling as pure functions: defaults, pruning, OpenAPI and CEL validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness.schemas import apply_defaults, prune, validate_custom_resource

CRD = yaml.safe_load((Path(__file__).parent / "widgets-crd.yaml").read_text())
SCHEMA: dict[str, Any] = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def widget(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "example.dev/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"size": 2, **spec},
    }


def test_defaults_fill_absent_fields_and_list_items() -> None:
    out = apply_defaults(SCHEMA, widget(parts=[{"name": "a"}, {"name": "b", "count": 5}]))
    assert out["spec"]["color"] == "green"
    assert out["spec"]["kind"] == "plain"
    assert [p["count"] for p in out["spec"]["parts"]] == [1, 5]


def test_prune_drops_unknown_fields_but_keeps_preserved_ones_and_metadata() -> None:
    obj = widget(extra=1, labels={"free": {"form": True}}, parts=[{"name": "a", "junk": 2}])
    obj["metadata"]["labels"] = {"x": "y"}
    out = prune(SCHEMA, obj)
    assert "extra" not in out["spec"]
    assert out["spec"]["labels"] == {"free": {"form": True}}
    assert out["spec"]["parts"] == [{"name": "a"}]
    assert out["metadata"]["labels"] == {"x": "y"}


BAD = [
    ("missing-required", {"spec": {}}, "spec.size: Required value"),
    (
        "below-minimum",
        {"spec": {"size": 0}},
        "spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1",
    ),
    (
        "above-maximum",
        {"spec": {"size": 101}},
        "spec.size in body should be less than or equal to 100",
    ),
    (
        "wrong-type",
        {"spec": {"size": "two"}},
        'spec.size: Invalid value: "string": spec.size in body must be of type integer',
    ),
    (
        "enum",
        {"spec": {"size": 2, "color": "pink"}},
        'spec.color: Unsupported value: "pink": supported values: "red", "green", "blue"',
    ),
    (
        "max-length",
        {"spec": {"size": 2, "kind": "x" * 11}},
        "spec.kind: Too long: may not be more than 10 bytes",
    ),
    ("pattern", {"spec": {"size": 2, "uri": "http://a"}}, "spec.uri in body should match '^s3://'"),
    (
        "min-items",
        {"spec": {"size": 2, "parts": []}},
        "spec.parts in body should have at least 1 items",
    ),
    (
        "cel-rule-message",
        {"spec": {"size": 3, "color": "red"}},
        "spec: Invalid value: red widgets must have an even size",
    ),
    (
        "cel-uniqueness",
        {"spec": {"size": 2, "parts": [{"name": "a"}, {"name": "a"}]}},
        "spec.parts: Invalid value: 2: part names must be unique",
    ),
    (
        "cel-default-message",
        {"spec": {"size": 2, "uri": "gs://b"}},
        "failed rule: self.startsWith('s3://')",
    ),
]


@pytest.mark.parametrize(("case", "body", "expected"), BAD, ids=[b[0] for b in BAD])
def test_bad_manifests_name_the_field(case: str, body: dict[str, Any], expected: str) -> None:
    errors = validate_custom_resource(
        SCHEMA, {"apiVersion": "example.dev/v1", "kind": "Widget", **body}
    )
    assert any(expected in str(e) for e in errors), errors


def test_valid_manifest_has_no_errors() -> None:
    assert (
        validate_custom_resource(SCHEMA, apply_defaults(SCHEMA, widget(parts=[{"name": "a"}])))
        == []
    )


def test_transition_rule_runs_only_on_update_and_reports_field_path() -> None:
    new = apply_defaults(SCHEMA, widget(kind="fancy"))
    assert validate_custom_resource(SCHEMA, new) == []
    old = apply_defaults(SCHEMA, widget())
    errors = validate_custom_resource(SCHEMA, new, old)
    assert [str(e) for e in errors] == ['spec.kind: Invalid value: "fancy": kind is immutable']
    assert validate_custom_resource(SCHEMA, new, new) == []


def test_cel_evaluation_error_is_reported_not_raised() -> None:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
                "x-kubernetes-validations": [{"rule": "self.missing > 1"}],
            }
        },
    }
    errors = validate_custom_resource(schema, {"spec": {}})
    assert len(errors) == 1
    assert (
        str(errors[0])
        == "spec: Invalid value: failed rule: self.missing > 1 (the rule could not be evaluated)"
    )
    assert "celpy" not in str(errors[0])
    assert "Token(" not in str(errors[0])
