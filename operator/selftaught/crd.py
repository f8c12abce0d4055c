"""Generate the SelfTaughtRun CustomResourceDefinition from the pydantic types in :mod:`api`.

pydantic's JSON Schema is close to, but not, a Kubernetes structural schema: it uses ``$ref``,
``anyOf`` for optionals and ``title`` keys, and knows nothing of printer columns. This module
turns one into the other, so ``crds/selftaughtrun.yaml`` is always derived, never hand-edited.
``selftaught crd`` prints it; a test regenerates it and compares with the committed file.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from selftaught import api

#: Keys of JSON Schema that Kubernetes' structural schemas accept and that we carry over.
_KEPT = {
    "type",
    "description",
    "default",
    "enum",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "pattern",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "format",
    "x-kubernetes-validations",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
}

_RULES = "x-kubernetes-validations"

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Stage", "type": "string", "jsonPath": ".status.stageShown"},
    {"name": "Iteration", "type": "string", "jsonPath": ".status.progress"},
    {
        "name": "Best",
        "type": "number",
        "format": "float",
        "jsonPath": ".status.bestAccuracy",
        "description": "Best overall accuracy on earlyStop.metric.",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "Seed-Model", "type": "string", "jsonPath": ".spec.seedModel", "priority": 1},
    {"name": "Summary", "type": "string", "jsonPath": ".status.summary", "priority": 1},
    {
        "name": "Serving",
        "type": "string",
        "jsonPath": ".status.serving.endpoint",
        "description": "In-cluster URL of the served best judge (spec.serve).",
        "priority": 1,
    },
    {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1},
]


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Inline ``$ref``s and collapse ``Optional[X]`` (``anyOf: [X, null]``) to X."""
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        # A field's own rules (immutability) add to its type's rules; neither replaces the other.
        rules = target.get(_RULES, []) + node.get(_RULES, [])
        if rules:
            merged[_RULES] = rules
        return _resolve(merged, defs)
    if "allOf" in node and len(node["allOf"]) == 1:
        merged = {**node["allOf"][0], **{k: v for k, v in node.items() if k != "allOf"}}
        return _resolve(merged, defs)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"union types are not structural: {node}")
        merged = {**options[0], **{k: v for k, v in node.items() if k != "anyOf"}}
        if merged.get("default", 0) is None:
            del merged["default"]
        return _resolve(merged, defs)
    return node


def _structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    node = _resolve(node, defs)
    out = {k: v for k, v in node.items() if k in _KEPT}
    if "const" in node:
        out["enum"] = [node["const"]]
        out.setdefault("type", "string")
    kind = node.get("type")
    if kind == "object" or "properties" in node:
        out["type"] = "object"
        props = node.get("properties", {})
        if props:
            out["properties"] = {k: _structural(v, defs) for k, v in props.items()}
        extra = node.get("additionalProperties")
        if isinstance(extra, dict) and not props:
            out["additionalProperties"] = _structural(extra, defs)
        elif extra is True or (
            not props and extra is None and node.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["x-kubernetes-preserve-unknown-fields"] = True
        if node.get("required"):
            out["required"] = list(node["required"])
        # A defaulted nested object: Kubernetes applies defaults bottom-up, so the parent's
        # literal default would hide the children's own; an empty object lets them fill in.
        if isinstance(out.get("default"), dict):
            out["default"] = {}
    elif kind == "array":
        out["items"] = _structural(node.get("items", {}), defs)
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)  # Kubernetes' int-or-string carries no type of its own
    for bound, edge in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        # OpenAPI v3.0 (what Kubernetes speaks) spells an exclusive bound as a flag.
        if bound in out and not isinstance(out[bound], bool):
            out[edge] = out.pop(bound)
            out[bound] = True
    return out


def _factory_defaults(model: type[BaseModel], schema: dict[str, Any]) -> None:
    """Give fields built by ``default_factory`` their default in the schema too.

    pydantic leaves them out of its JSON Schema; without them the API server would not fill in
    ``judging: {...}`` for a manifest that omits it, and ``kubectl get -o yaml`` would show less
    than the operator actually uses.
    """
    props = schema.get("properties", {})
    for name, field in model.model_fields.items():
        key = field.alias or name
        node = props.get(key)
        if node is None:
            continue
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            _factory_defaults(annotation, node)
        if field.default_factory is not None and "default" not in node:
            value = field.default_factory()  # type: ignore[call-arg]
            node["default"] = {} if isinstance(value, BaseModel) else value


def _schema_of(model: type[api.Model], description: str) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    schema = _structural(raw, defs)
    _factory_defaults(model, schema)
    schema["description"] = description
    return schema


def status_schema() -> dict[str, Any]:
    return _schema_of(api.RunStatus, (api.RunStatus.__doc__ or "").strip())


def spec_schema() -> dict[str, Any]:
    return _schema_of(api.RunSpec, (api.RunSpec.__doc__ or "").strip())


def metadata_schema() -> dict[str, Any]:
    """The root ``metadata``: Kubernetes lets a CRD restrict ``name`` (and nothing else there).

    A run's name must be a DNS-1123 label of at most 63 characters: every child Job's name is
    derived from it (hash-shortened to fit, see :mod:`selftaught.names`), and an Indexed Job's
    pod hostnames must be DNS labels, so dots cannot be allowed and the cap is a label's.
    """
    from selftaught import kubegrammar as k8s

    return {
        "type": "object",
        "properties": {
            "name": {
                "type": "string",
                "description": "Name of the run: a DNS-1123 label (lower-case letters, digits "
                f"and '-') of at most {api.MAX_RUN_NAME} characters, so that every Job name "
                "derived from it is valid.",
                "maxLength": api.MAX_RUN_NAME,
                "pattern": k8s.DNS1123_LABEL,
            }
        },
    }


def custom_resource_definition() -> dict[str, Any]:
    """The CRD as a plain dict, ready for ``yaml.safe_dump``."""
    spec = spec_schema()
    status = status_schema()
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{api.PLURAL}.{api.GROUP}",
            "labels": {"app.kubernetes.io/name": "selftaught"},
        },
        "spec": {
            "group": api.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": api.KIND,
                "listKind": f"{api.KIND}List",
                "plural": api.PLURAL,
                "singular": api.SINGULAR,
                "shortNames": list(api.SHORT_NAMES),
                "categories": list(api.CATEGORIES),
            },
            "versions": [
                {
                    "name": api.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "SelfTaughtRun trains an LLM-as-a-judge without human "
                            "preference labels: synthetic contrasting pairs, rejection-sampled "
                            "judgments, supervised fine-tuning, iterated (arXiv 2408.02666).",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": metadata_schema(),
                                "spec": spec,
                                "status": status,
                            },
                        }
                    },
                }
            ],
        },
    }


def render_yaml() -> str:
    import yaml

    header = (
        "# Generated from operator/selftaught/api.py by `selftaught crd`. Do not edit by hand:\n"
        "# tests/unit/test_crd.py fails when this file and the Python types disagree.\n"
    )
    return header + yaml.safe_dump(custom_resource_definition(), sort_keys=False, width=100)
