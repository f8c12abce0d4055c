"""The Grafana dashboard, statically: in sync with its builder, laid out without overlaps, every
panel queried through the ``$datasource`` variable, every PromQL expression parsed by promtool.

(Whether each query returns data from a live operator is a separate, live-Prometheus test.)
"""

from __future__ import annotations

import json
import re
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
import yaml

from selftaught.observability import dashboard
from selftaught.observability.__main__ import DASHBOARD_PATH
from selftaught.observability.catalog import METRICS, SERIES_NAMES
from tests.chart.rendering import CHART_DIR
from tests.observability.promtool import check_rules

DASHBOARD_FILE = CHART_DIR / DASHBOARD_PATH
#: What Grafana substitutes before a query reaches Prometheus (the "All" value is ".*").
SUBSTITUTIONS = {
    "$namespace": ".*",
    "$run": ".*",
    "$__rate_interval": "5m",
    "$__range": "1h",
    "$__interval": "1m",
}
RUN_METRICS = {m.name for m in METRICS if "run" in m.labels}
#: A metric name in PromQL (not inside a quoted label value such as job="selftaught_worker").
METRIC_NAME = r'(?<!["\w])(selftaught_\w+)\b'


@pytest.fixture(scope="module")
def board() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text())
    return loaded


def _expressions(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target."""
    return [
        (f"panel {panel['id']} {target['refId']}", target["expr"])
        for panel in board["panels"]
        for target in panel["targets"]
    ]


def _substitute(expr: str) -> str:
    for variable, value in SUBSTITUTIONS.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unknown Grafana variable in: {expr}"
    return expr


def test_committed_dashboard_equals_the_builder() -> None:
    assert DASHBOARD_FILE.read_text() == dashboard.render_json(), (
        "run: python -m selftaught.observability"
    )


def test_panels_have_unique_ids_titles_and_queries(board: dict[str, Any]) -> None:
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["title"]
        assert panel["description"]
        assert panel["targets"], f"panel {panel['title']} has no query"
        assert all(target["expr"].strip() for target in panel["targets"])
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids))


def test_the_requested_panels_exist(board: dict[str, Any]) -> None:
    types = {panel["title"]: panel["type"] for panel in board["panels"]}
    assert types["Runs"] == "table"
    assert types["Stage timeline"] == "state-timeline"
    assert types["Judge accuracy over time"] == "timeseries"
    for title in (
        "Kept judgments",
        "GPU-hours",
        "Stage duration (p50 / p95)",
        "Job failures",
        "Reconcile latency and errors",
        "Worker progress",
        "Judging cost",
        "GPU-hours per accuracy point",
    ):
        assert title in types
    assert types["Accuracy by iteration"] == "barchart"
    assert types["GPU-hours by iteration"] == "barchart"


def _output_labels(expr: str) -> set[str]:
    """Labels an aggregation keeps (``by (...)``) plus the one a ``label_join`` adds."""
    kept = set(re.findall(r"\w+", re.findall(r"by \(([^)]*)\)", expr)[0]))
    joined = re.match(r'label_join\(.*?\), "(\w+)"', expr, flags=re.DOTALL)
    return kept | ({joined[1]} if joined else set())


@pytest.mark.parametrize(
    ("title", "metric", "column", "stacking"),
    [
        pytest.param("Accuracy by iteration", "selftaught_iteration_accuracy", "series", "none",
                     id="accuracy-a-bar-per-run-and-eval-set"),
        pytest.param("GPU-hours by iteration", "selftaught_iteration_gpu_seconds", "stage",
                     "normal", id="gpu-hours-stacked-by-stage"),
    ],
)  # fmt: skip
def test_by_iteration_panels_put_the_iteration_on_the_x_axis(
    board: dict[str, Any], title: str, metric: str, column: str, stacking: str
) -> None:
    """The query's table has one row per iteration and ``column``; the transformations pivot
    it into a row per iteration (sorted as numbers) and a column per ``column`` value, and the
    bar chart's x axis is the iteration field they leave behind."""
    panel = next(p for p in board["panels"] if p["title"] == title)
    (target,) = panel["targets"]
    assert (target["instant"], target["format"]) == (True, "table")
    assert metric in re.findall(METRIC_NAME, target["expr"])
    assert "iteration" in next(m.labels for m in METRICS if m.name == metric)
    assert {"iteration", column} <= _output_labels(target["expr"])
    steps = {step["id"]: step["options"] for step in panel["transformations"]}
    assert list(steps) == ["convertFieldType", "sortBy", "groupingToMatrix", "organize"]
    assert steps["convertFieldType"]["conversions"] == [
        {"targetField": "iteration", "destinationType": "number"}
    ]
    assert steps["sortBy"]["sort"] == [{"field": "iteration"}]
    matrix = steps["groupingToMatrix"]
    assert (matrix["rowField"], matrix["columnField"], matrix["valueField"]) == (
        "iteration",
        column,
        "Value",
    )
    # Grafana names the pivoted row field "<row>\\<column>".
    assert steps["organize"]["renameByName"] == {f"iteration\\{column}": "iteration"}
    assert panel["options"]["xField"] == "iteration"
    assert panel["options"]["stacking"] == stacking


def test_grid_positions_do_not_overlap(board: dict[str, Any]) -> None:
    boxes = {panel["id"]: panel["gridPos"] for panel in board["panels"]}
    for box in boxes.values():
        assert box["w"] > 0
        assert box["h"] > 0
        assert box["x"] >= 0
        assert box["x"] + box["w"] <= 24
    for (a, pa), (b, pb) in combinations(boxes.items(), 2):
        apart = (
            pa["x"] + pa["w"] <= pb["x"]
            or pb["x"] + pb["w"] <= pa["x"]
            or pa["y"] + pa["h"] <= pb["y"]
            or pb["y"] + pb["h"] <= pa["y"]
        )
        assert apart, f"panels {a} and {b} overlap"


def test_datasource_variable_is_used_everywhere(board: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    reference = {"type": "prometheus", "uid": "${datasource}"}
    for name in ("namespace", "run"):
        assert variables[name]["datasource"] == reference
    for panel in board["panels"]:
        assert panel["datasource"] == reference, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == reference, panel["title"]


def test_run_level_queries_follow_the_namespace_and_run_variables(board: dict[str, Any]) -> None:
    for where, expr in _expressions(board):
        used = set(re.findall(METRIC_NAME, expr))
        if used & RUN_METRICS:
            assert 'namespace=~"$namespace"' in expr, where
            assert 'run=~"$run"' in expr, where


def test_queries_use_only_exported_metrics(board: dict[str, Any]) -> None:
    for where, expr in _expressions(board):
        names = set(re.findall(METRIC_NAME, expr))
        assert names <= SERIES_NAMES, f"{where}: {names - SERIES_NAMES}"


def test_every_expression_parses(board: dict[str, Any], tmp_path: Path) -> None:
    """promtool parses each query wrapped as a recording rule, variables substituted."""
    rules = [
        {"record": f"dashboard:{where.replace(' ', '_')}", "expr": _substitute(expr)}
        for where, expr in _expressions(board)
    ]
    for variable in board["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"])
        assert match, variable["query"]
        rules.append(
            {"record": f"dashboard:variable_{variable['name']}", "expr": _substitute(match[1])}
        )
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    check_rules(path)
