"""Validate a SelfTaughtRun the way the Kubernetes API server does: prune, default, check.

A real API server runs three steps on every write of a custom resource, in this order: it prunes
fields the CRD's ``openAPIV3Schema`` does not know, applies the schema's ``default`` values, then
validates the result (OpenAPI keywords, then the CEL rules in ``x-kubernetes-validations``). The
embedded runner (``selftaught run``) does the same with the generated CRD, so a manifest gets the
same verdict and the same field-named messages on a laptop as on a cluster; the test harness's
API emulator uses these functions for every custom resource it stores.

Every problem is a :class:`FieldError` (path, message, the offending value and the API server's
cause reason), from here to the user: the emulator turns them into a 422's ``causes``, the
embedded runner into "file:line: path: message" lines. Messages imitate the API server's field
errors ("spec.x: Invalid value: 0: spec.x in body should be greater than or equal to 1"; an
exclusive bound reads "should be greater than 0"). cel-python lacks Kubernetes' CEL extensions,
so the CRD sticks to portable CEL.
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass, field
from typing import Any, cast

import celpy
import jsonschema
from celpy.adapter import json_to_cel
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError

from selftaught.kubegrammar import EXPLAINED

#: Keys a custom resource always keeps at its root, whatever its schema says.
_ROOT_KEEP = ("apiVersion", "kind", "metadata")

_cel_env = celpy.Environment()
_cel_programs: dict[str, Any] = {}

#: Integers a Kubernetes object can carry (JSON numbers decode into int64 on the server).
_INT64 = (-(2**63), 2**63 - 1)

#: What the API server adds when type errors stop it from running the CEL rules.
RULES_SKIPPED = (
    "some validation rules were not checked because the object was invalid; correct the "
    "existing errors to complete validation"
)


@dataclass(frozen=True)
class FieldError:
    """One problem with one field, in the API server's terms (a ``StatusCause``).

    ``path`` is the field ("spec.training.epochs", "<root>" for the object), ``message`` what is
    wrong with it ("Invalid value: 0: spec.training.epochs in body should be greater than 0"),
    ``reason`` the cause's machine-readable reason and ``value`` the offending value where one
    exists. ``str()`` is the one-line form users read: "path: message".
    """

    path: str
    message: str
    reason: str = "FieldValueInvalid"
    value: Any = field(default=None, compare=False)

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"

    def startswith(self, prefix: str) -> bool:
        """Whether the field lies at or under ``prefix`` (a dotted path)."""
        return self.path == prefix or self.path.startswith((prefix + ".", prefix + "["))


@dataclass(frozen=True)
class Admission:
    """The verdict on one write: the pruned and defaulted object, and every problem found."""

    document: dict[str, Any]
    errors: list[FieldError]

    @property
    def allowed(self) -> bool:
        return not self.errors


def apply_defaults(schema: dict[str, Any], obj: Any) -> Any:
    """Return a copy of ``obj`` with the schema's ``default`` values filled in where absent.

    Defaults apply to object properties (recursively, including inside a default that was just
    set), to every item of an array and to every value of a map (``additionalProperties``).
    """
    return _default(schema, copy.deepcopy(obj))


def _default(schema: dict[str, Any], value: Any) -> Any:
    if isinstance(value, dict):
        for name, sub in (schema.get("properties") or {}).items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                value[name] = _default(sub, value[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            known = schema.get("properties") or {}
            for key in list(value):
                if key not in known:
                    value[key] = _default(extra, value[key])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        value[:] = [_default(schema["items"], item) for item in value]
    return value


def prune(schema: dict[str, Any], obj: Any, *, root: bool = True) -> Any:
    """Return a copy of ``obj`` without fields the structural schema does not declare.

    ``x-kubernetes-preserve-unknown-fields: true`` keeps unknown fields at that level;
    ``x-kubernetes-embedded-resource`` keeps ``apiVersion``/``kind``/``metadata`` like the root.
    """
    return _prune(schema, copy.deepcopy(obj), root=root)


def _prune(schema: dict[str, Any], value: Any, *, root: bool) -> Any:
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        keep_unknown = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        embedded = root or bool(schema.get("x-kubernetes-embedded-resource"))
        for key in list(value):
            if key in props:
                if not (embedded and key == "metadata"):
                    value[key] = _prune(props[key], value[key], root=False)
            elif isinstance(extra, dict):
                value[key] = _prune(extra, value[key], root=False)
            elif extra is True or keep_unknown or (embedded and key in _ROOT_KEEP):
                continue
            else:
                del value[key]
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        value[:] = [_prune(schema["items"], item, root=False) for item in value]
    return value


def validate_custom_resource(
    schema: dict[str, Any], obj: dict[str, Any], old_obj: dict[str, Any] | None = None
) -> list[FieldError]:
    """Every field error of ``obj`` against ``schema``, as the API server words them.

    ``old_obj`` is the stored object on an update: CEL transition rules (those that mention
    ``oldSelf``) run only when it is given and the field existed before. An empty list means valid.
    Like the API server, the CEL rules are not run when a value has the wrong type (a rule
    comparing a string with a number says nothing useful): one error says they were skipped.
    """
    errors = _openapi_errors(schema, obj)
    if any(e.reason == "FieldValueTypeInvalid" for e in errors):
        return [*errors, FieldError("<root>", RULES_SKIPPED)]
    typed_old = _as_declared(schema, old_obj) if old_obj is not None else None
    errors.extend(_cel_errors(schema, _as_declared(schema, obj), typed_old, path=""))
    return errors


def _as_declared(schema: dict[str, Any], value: Any) -> Any:
    """``value`` with integers turned into floats wherever the schema says ``number``.

    JSON has one number type: ``kubectl apply`` sends ``temperature: 1.0`` as ``1``. The API
    server types CEL values by the schema, so ``self.temperature > 0.0`` compares doubles; CEL
    has no int-double overloads, so without this a valid manifest would fail to evaluate.
    """
    kind = schema.get("type")
    if kind == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, dict):
        known = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        out = {}
        for key, item in value.items():
            sub = known.get(key) if key in known else (extra if isinstance(extra, dict) else None)
            out[key] = _as_declared(sub, item) if sub else item
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_as_declared(schema["items"], item) for item in value]
    return value


# --- OpenAPI keywords, checked by jsonschema ---------------------------------------------------


def end_of_text(pattern: str) -> str:
    """``pattern`` with a final ``$`` meaning the end of the text, as in Go's RE2 (which the API
    server uses): Python's ``$`` also matches before a trailing newline, so ``"0\\n"`` would pass
    ``^[^\\s]+$``."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        return pattern[:-1] + "\\Z"
    return pattern


def _to_json_schema(schema: Any) -> Any:
    """Translate OpenAPI v3.0 dialect (``nullable``, int-or-string) into JSON Schema draft 4."""
    if isinstance(schema, list):
        return [_to_json_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, val in schema.items():
        if key.startswith("x-kubernetes-") or key in ("default", "description", "example"):
            continue
        if key in ("properties", "patternProperties", "definitions"):
            out[key] = {k: _to_json_schema(v) for k, v in val.items()}
        elif key in ("items", "additionalProperties", "not", "allOf", "anyOf", "oneOf"):
            out[key] = _to_json_schema(val)
        elif key == "pattern" and isinstance(val, str):
            out[key] = end_of_text(val)
        elif key not in ("nullable", "format"):
            out[key] = val
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def _path(parts: Any, schema: dict[str, Any] | None = None) -> str:
    """A field path as the API server writes it: ``.name`` for properties, ``[i]`` for list
    items and ``[key]`` for map keys (``nodeSelector[example.com/gpu]``)."""
    text = ""
    for part in parts:
        props = (schema or {}).get("properties") or {}
        if isinstance(part, int):
            text += f"[{part}]"
            schema = (schema or {}).get("items") if isinstance(schema, dict) else None
        elif schema is not None and part not in props and "additionalProperties" in schema:
            text += f"[{part}]"
            extra = schema["additionalProperties"]
            schema = extra if isinstance(extra, dict) else None
        else:
            text += f".{part}" if text else str(part)
            schema = props.get(part) if schema is not None else None
    return text


def _show(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str) else _short(value)


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return '"object"'
    if isinstance(value, list):
        return str(len(value))
    return json.dumps(value)


def _bound(value: Any) -> str:
    """A schema bound as Go prints it: ``0`` for ``0.0``, ``1e-06`` kept as is."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def _message(err: jsonschema.ValidationError, schema: dict[str, Any]) -> FieldError:
    """One field error in the API server's words."""
    kw, arg, inst = err.validator, cast(Any, err.validator_value), cast(Any, err.instance)
    if kw == "pattern" and isinstance(arg, str) and arg.endswith("\\Z"):
        arg = arg[:-2] + "$"  # the pattern as the CRD (and the API server) writes it
    path = _path(err.absolute_path, schema)
    if kw == "required":
        missing = [n for n in arg if isinstance(inst, dict) and n not in inst]
        name = missing[0] if missing else "?"
        return FieldError(
            _path([*err.absolute_path, name], schema), "Required value", "FieldValueRequired"
        )
    where = path or "<root>"
    rule = err.schema if isinstance(err.schema, dict) else {}
    below = "" if rule.get("exclusiveMinimum") is True else " or equal to"
    above = "" if rule.get("exclusiveMaximum") is True else " or equal to"
    detail = {
        "minimum": f"{where} in body should be greater than{below} {_bound(arg)}",
        "maximum": f"{where} in body should be less than{above} {_bound(arg)}",
        "minLength": f"{where} in body should be at least {arg} chars long",
        "pattern": f"{where} in body should match '{arg}'",
        "minItems": f"{where} in body should have at least {arg} items",
        "minProperties": f"{where} in body should have at least {arg} properties",
        "maxProperties": f"{where} in body should have at most {arg} properties",
        "multipleOf": f"{where} in body should be a multiple of {arg}",
        "uniqueItems": f"{where} in body shouldn't contain duplicates",
    }
    if kw == "enum":
        allowed = ", ".join(json.dumps(a) for a in arg)
        return FieldError(
            where,
            f"Unsupported value: {_show(inst)}: supported values: {allowed}",
            "FieldValueNotSupported",
            inst,
        )
    if kw == "maxLength":
        return FieldError(
            where, f"Too long: may not be more than {arg} bytes", "FieldValueTooLong", inst
        )
    if kw == "maxItems":
        return FieldError(
            where, f"Too many: {len(inst)}: must have at most {arg} items", "FieldValueTooMany"
        )
    if kw in ("type", "anyOf"):
        kind = _kind(inst)
        if kw == "anyOf":
            shown = "integer/string"  # x-kubernetes-int-or-string, the only anyOf we generate
        else:
            shown = arg if isinstance(arg, str) else "/".join(a for a in arg if a != "null")
        return FieldError(
            where,
            f'Invalid value: "{kind}": {where} in body must be of type {shown}: "{kind}"',
            "FieldValueTypeInvalid",
            inst,
        )
    text = detail.get(str(kw), err.message)
    if kw == "pattern" and arg in EXPLAINED:  # a Kubernetes grammar: the API server's words
        text = EXPLAINED[arg]
    return FieldError(where, f"Invalid value: {_short(inst)}: {text}", "FieldValueInvalid", inst)


def _kind(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), "number" if isinstance(value, float) else "integer"
    )


def _out_of_range(obj: Any, parts: tuple[Any, ...] = ()) -> list[FieldError]:
    """Integers no int64 holds: the API server cannot decode them, so nothing else is checked."""
    if isinstance(obj, dict):
        return [e for k, v in obj.items() for e in _out_of_range(v, (*parts, k))]
    if isinstance(obj, list):
        return [e for i, v in enumerate(obj) for e in _out_of_range(v, (*parts, i))]
    if isinstance(obj, int) and not isinstance(obj, bool) and not _INT64[0] <= obj <= _INT64[1]:
        where = _path(parts) or "<root>"
        return [
            FieldError(
                where,
                f"Invalid value: {obj}: {where} in body must be an integer that fits in 64 bits",
                "FieldValueTypeInvalid",
                obj,
            )
        ]
    return []


def _openapi_errors(schema: dict[str, Any], obj: dict[str, Any]) -> list[FieldError]:
    too_big = _out_of_range(obj)
    if too_big:
        return too_big
    validator = jsonschema.Draft4Validator(_to_json_schema(schema))
    errors = sorted(
        validator.iter_errors(obj),
        key=lambda e: (list(map(str, e.absolute_path)), str(e.validator)),
    )
    return [_message(e, schema) for e in errors]


# --- CEL: x-kubernetes-validations ----------------------------------------------------------------


def _program(rule: str) -> Any:
    prog = _cel_programs.get(rule)
    if prog is None:
        prog = _cel_env.program(_cel_env.compile(rule))
        _cel_programs[rule] = prog
    return prog


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


@functools.lru_cache(maxsize=4096)
def _rule_outcome(rule: str, value: str, old: str | None) -> tuple[str, str]:
    """("true" | "false" | "error" | "compile", detail) of one rule on one value (as JSON).

    Memoised: CEL is pure, and most writes of a resource change none of the values its rules
    read (a status update re-validates an unchanged spec). cel-python interprets each rule by
    walking its parse tree, which made rule checks a third of the API emulator's CPU time at
    1,000 runs (``benchmarks/operator_scale.py``).
    """
    try:
        program = _program(rule)
    except CELParseError as exc:
        return "compile", str(exc)
    try:
        activation = {"self": json_to_cel(json.loads(value))}
        if old is not None:
            activation["oldSelf"] = json_to_cel(json.loads(old))
        result = program.evaluate(activation)
    except CELEvalError as exc:  # e.g. a missing key without has()
        result = exc
    except (ValueError, OverflowError, TypeError) as exc:  # a value CEL cannot represent
        return "error", str(exc)
    if isinstance(result, CELEvalError):
        return "error", str(result.args[0] if result.args else result)
    return ("true" if bool(result) else "false"), ""


def _correlate(schema: dict[str, Any], old: Any, item: Any, index: int) -> Any:
    """The old list item that corresponds to ``item`` (map lists only, as Kubernetes does)."""
    if schema.get("x-kubernetes-list-type") != "map" or not isinstance(old, list):
        return None
    keys = schema.get("x-kubernetes-list-map-keys") or []
    for candidate in old:
        if (
            isinstance(candidate, dict)
            and isinstance(item, dict)
            and all(candidate.get(k) == item.get(k) for k in keys)
        ):
            return candidate
    return None


def _at(value: Any, field_path: str) -> Any:
    """The value a rule's ``fieldPath`` (".a.b") points at, or None."""
    for part in field_path.strip(".").split("."):
        if not part:
            continue
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _rule_error(where: str, value: Any, message: str) -> FieldError:
    """A failed rule, naming the value when it is a scalar (never ``"object"``)."""
    if isinstance(value, dict) or value is None:
        return FieldError(where, f"Invalid value: {message}", "FieldValueInvalid")
    return FieldError(
        where, f"Invalid value: {_short(value)}: {message}", "FieldValueInvalid", value
    )


def _cel_errors(schema: dict[str, Any], value: Any, old: Any, *, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    for rule in schema.get("x-kubernetes-validations") or []:
        text = rule["rule"]
        transition = "oldSelf" in text
        if transition and old is None and not rule.get("optionalOldSelf"):
            continue
        field_path = rule.get("fieldPath") or ""
        where = (path + field_path).lstrip(".") or "<root>"
        shown = _at(value, field_path)
        message = rule.get("message") or f"failed rule: {text}"
        outcome, detail = _rule_outcome(
            text, _canonical(value), _canonical(old) if transition else None
        )
        if outcome == "compile":  # a bug in the CRD, not in the object: say which rule
            errors.append(_rule_error(where, shown, f"rule compile error: {text}: {detail}"))
        elif outcome == "error":  # e.g. a value CEL cannot hold: the rule's own words
            errors.append(_rule_error(where, shown, f"{message} (the rule could not be evaluated)"))
        elif outcome == "false":
            errors.append(_rule_error(where, shown, message))
    if isinstance(value, dict):
        for name, sub in (schema.get("properties") or {}).items():
            if name in value:
                sub_old = old.get(name) if isinstance(old, dict) else None
                errors.extend(_cel_errors(sub, value[name], sub_old, path=f"{path}.{name}"))
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            known = schema.get("properties") or {}
            for key, item in value.items():
                if key not in known:
                    sub_old = old.get(key) if isinstance(old, dict) else None
                    errors.extend(_cel_errors(extra, item, sub_old, path=f"{path}[{key}]"))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            sub_old = _correlate(schema, old, item, index)
            errors.extend(_cel_errors(schema["items"], item, sub_old, path=f"{path}[{index}]"))
    return errors


def unknown_fields(original: Any, pruned: Any, path: str = "") -> list[str]:
    """Paths present in ``original`` that pruning removed (for ``fieldValidation=Strict``)."""
    if isinstance(original, dict) and isinstance(pruned, dict):
        found: list[str] = []
        for key, value in original.items():
            sub = f"{path}.{key}" if path else key
            found.extend([sub] if key not in pruned else unknown_fields(value, pruned[key], sub))
        return found
    if isinstance(original, list) and isinstance(pruned, list):
        return [
            f
            for i, (a, b) in enumerate(zip(original, pruned, strict=False))
            for f in unknown_fields(a, b, f"{path}[{i}]")
        ]
    return []


def spec_schema_of(definition: dict[str, Any]) -> dict[str, Any]:
    """The ``spec`` schema of a CRD's first served version."""
    version = definition["spec"]["versions"][0]
    return dict(version["schema"]["openAPIV3Schema"]["properties"]["spec"])


@functools.cache
def _run_schema() -> dict[str, Any]:
    """The SelfTaughtRun's ``openAPIV3Schema``, generated once per process (33 ms a time, 80% of
    an admission); read-only: nothing here writes into a schema."""
    from selftaught.crd import custom_resource_definition

    definition = custom_resource_definition()
    return cast(dict[str, Any], definition["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


def admit(
    document: dict[str, Any], *, old: dict[str, Any] | None = None, strict: bool = True
) -> Admission:
    """What the API server would do with ``document`` (a SelfTaughtRun): prune, default, check.

    ``strict`` reports unknown fields, as ``kubectl apply`` does by default
    (``fieldValidation=Strict``). ``old`` is the stored object on an update.
    """
    schema = _run_schema()
    pruned = prune(schema, document)
    problems = (
        [
            FieldError(path, "unknown field", "FieldValueInvalid")
            for path in unknown_fields(document, pruned)
        ]
        if strict
        else []
    )
    defaulted = apply_defaults(schema, pruned)
    old_defaulted = apply_defaults(schema, prune(schema, old)) if old is not None else None
    problems += validate_custom_resource(schema, defaulted, old_defaulted)
    return Admission(document=defaulted, errors=problems)


def check_manifest(
    document: dict[str, Any], *, old: dict[str, Any] | None = None, strict: bool = True
) -> list[FieldError]:
    """Every problem the API server would report for ``document`` (a SelfTaughtRun), or []."""
    return admit(document, old=old, strict=strict).errors
