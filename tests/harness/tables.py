"""Server-side printing: the ``meta.k8s.io/v1`` Table that ``kubectl get`` asks for.

kubectl sends ``Accept: application/json;as=Table;g=meta.k8s.io;v=v1`` and prints whatever
columns the server returns, so a CRD's ``additionalPrinterColumns`` are only visible through a
server that evaluates them. Columns are NAME, the printer columns (their JSONPath evaluated
here; ``priority > 0`` ones are shown by kubectl only with ``-o wide``) and AGE. Date columns are
turned into a human age on the server, as the real table convertor does.
"""

from __future__ import annotations

import datetime
import json
import re
from typing import Any

from tests.harness.resources import ResourceType

_TOKEN = re.compile(r"\.([A-Za-z0-9_-]+)|\[([^\]]*)\]")
_FILTER = re.compile(r"^\?\(@\.([A-Za-z0-9_.-]+)\s*==\s*['\"]?([^'\"]*)['\"]?\)$")


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def jsonpath(obj: Any, path: str) -> list[Any]:
    """Evaluate the JSONPath subset printer columns use: fields, indexes, slices, ``*``, filters."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    path = path.lstrip("$")
    nodes = [obj]
    for match in _TOKEN.finditer(path):
        field, bracket = match.groups()
        following: list[Any] = []
        for node in nodes:
            if field is not None:
                if isinstance(node, dict) and field in node:
                    following.append(node[field])
            elif isinstance(node, list):
                following.extend(_index(node, bracket or ""))
            elif isinstance(node, dict) and bracket == "*":
                following.extend(node.values())
        nodes = following
    return nodes


def _index(items: list[Any], spec: str) -> list[Any]:
    spec = spec.strip()
    if spec == "*":
        return items
    filt = _FILTER.match(spec)
    if filt:
        keys, want = filt.group(1).split("."), filt.group(2)
        out = []
        for item in items:
            value: Any = item
            for key in keys:
                value = value.get(key) if isinstance(value, dict) else None
            if value is not None and str(value) == want:
                out.append(item)
        return out
    if ":" in spec:
        start, _, stop = spec.partition(":")
        return items[int(start) if start else None : int(stop) if stop else None]
    try:
        return [items[int(spec)]]
    except (ValueError, IndexError):
        return []


def human_age(stamp: str | None, *, now: datetime.datetime | None = None) -> str:
    """``5s``, ``3m``, ``2h``, ``4d`` like kubectl's AGE column; ``<unknown>`` if unparsable."""
    if not stamp:
        return "<unknown>"
    try:
        then = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return "<unknown>"
    seconds = int(((now or datetime.datetime.now(datetime.UTC)) - then).total_seconds())
    seconds = max(seconds, 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * 2 or (unit == "m" and seconds >= 120):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _cell(column: dict[str, Any], obj: dict[str, Any]) -> Any:
    found = jsonpath(obj, column.get("jsonPath", ""))
    if "over" in column:  # built-in "ready/desired" columns, e.g. a Deployment's READY
        whole = jsonpath(obj, column["over"])
        return f"{found[0] if found else 0}/{whole[0] if whole else 0}"
    if not found:
        return column.get("default")
    if column.get("labels") and isinstance(found[0], dict):  # a selector, as kubectl prints it
        return ",".join(f"{k}={v}" for k, v in sorted(found[0].items()))
    if len(found) > 1 and column.get("type", "string") == "string":
        return ",".join(str(v) for v in found)  # containers[*].name: "a,b" as kubectl prints
    value = found[0]
    kind = column.get("type", "string")
    if kind == "date":
        return human_age(value if isinstance(value, str) else None)
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    if kind == "string" and not isinstance(value, str):
        return json.dumps(value)
    return value


def _columns(rt: ResourceType) -> list[dict[str, Any]]:
    declared = list(rt.printer_columns)
    columns = [
        {
            "name": "Name",
            "type": "string",
            "format": "name",
            "priority": 0,
            "jsonPath": ".metadata.name",
            "description": "Name must be unique within a namespace.",
        }
    ]
    columns.extend({"format": "", "description": "", "priority": 0, **c} for c in declared)
    if not any(c.get("jsonPath") == ".metadata.creationTimestamp" for c in declared):
        columns.append(
            {
                "name": "Age",
                "type": "date",
                "format": "",
                "priority": 0,
                "jsonPath": ".metadata.creationTimestamp",
                "description": "CreationTimestamp is the time the object was created.",
            }
        )
    return columns


def to_table(
    rt: ResourceType,
    objs: list[dict[str, Any]],
    *,
    resource_version: str,
    include_object: str = "Metadata",
) -> dict[str, Any]:
    """Render objects (one for a GET, many for a LIST) as a ``meta.k8s.io/v1`` Table."""
    columns = _columns(rt)
    rows = []
    for obj in objs:
        if include_object == "Object":
            embedded: dict[str, Any] | None = obj
        elif include_object == "None":
            embedded = None
        else:
            embedded = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            }
        rows.append({"cells": [_cell(c, obj) for c in columns], "object": embedded})
    definitions = [
        {k: c[k] for k in ("name", "type", "format", "description", "priority")} for c in columns
    ]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": [{**d, "name": d["name"]} for d in definitions],
        "rows": rows,
    }
