"""The dashboard and the alerts against a live Prometheus that scrapes a live operator.

A real Prometheus (1 s scrapes, the chart's rules file loaded) scrapes the real operator's
/metrics as job ``selftaught-operator`` and a real Pushgateway, both with ``honor_labels``, as
docs/observability.md tells users to. The operator runs in the emulator, the kubelet in instant
mode with realistic summaries:

- ``demo``: two iterations that succeed (GPU judge and train stages, so GPU-hours exist); a
  worker reporter built from the env of demo's own judge Job (the ``--pushgateway`` URL the
  operator handed on) pushes progress for two shards;
- ``broken``: its select worker exits 2 (bad input), so the run fails and failure counters move;
- ``stuck-<stage>``: one run held in each stage (its pod unschedulable), Running;
- ``gone``: succeeds, then is deleted, and its series (per-iteration ones included) must leave
  Prometheus.

Then every dashboard query (variables set to demo's namespace and run, and to "All") and every
alert expression must parse (promtool) and return data from ``/api/v1/query``. Alerts that are
silent when all is well (:data:`SILENT_WHEN_HEALTHY`) must return nothing, and their *healthy
form* must return data: the expression without its final threshold (``... > 7200``), or the
argument of ``absent(...)``; so must every vector selector in them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from selftaught import progress
from selftaught.observability import alerts
from selftaught.observability.catalog import OPERATOR_JOB, WORKER_JOB
from selftaught.phases import Stage
from tests.e2e.conftest import (
    E2E,
    SUMMARIES,
    Operator,
    emulated_e2e,
    run_manifest,
    start_operator,
    stop_operator,
)
from tests.e2e.test_operator import wait_until
from tests.harness.cluster import Cluster
from tests.harness.pod_faults import PodFault
from tests.observability.prometheus import (
    Prometheus,
    Pushgateway,
    Sample,
    check_metrics,
    finite,
    values,
)
from tests.observability.promtool import check_rules
from tests.observability.test_alerts import RULES_FILE
from tests.observability.test_dashboard import DASHBOARD_FILE, _expressions

pytestmark = pytest.mark.e2e

NS = "default"
#: Grafana's variables as a dashboard on "the last 5 minutes" resolves them. Instant queries
#: stand for a graph's latest point, so the windows cover the whole test (events happened in
#: the last minute or two): $__rate_interval is Grafana's 4 x scrape interval for a 30 s
#: datasource, wide enough that one failed Job is still inside it.
TIME_VARIABLES = {"$__rate_interval": "2m", "$__range": "5m", "$__interval": "15s"}
#: The run's values (what a user picks) and Grafana's "All" (the variables' allValue, ".*").
VARIABLE_SETS = {
    "demo": {"$namespace": NS, "$run": "demo"},
    "all": {"$namespace": ".*", "$run": ".*"},
}
#: Alerts whose expressions return nothing while every run is healthy, by design: a threshold
#: (or absent()) is the point of them. In this scenario only SelfTaughtRunFailed has a reason
#: to fire (``broken``); every other alert must stay silent here.
SILENT_WHEN_HEALTHY = {
    "SelfTaughtStageStuck": "no stage has run for hours",
    "SelfTaughtRunNoProgress": "no running run has been idle for 2 hours",
    "SelfTaughtOperatorDown": "the operator is up",
    "SelfTaughtReconcileErrors": "no reconcile fails",
    "SelfTaughtJobsFailing": "one failed Job in the last hour is below the threshold of 3",
}
#: A vector selector: a metric name not followed by "(" (a function), with its matchers.
SELECTOR = re.compile(r"(?<![\w\"])(selftaught_\w+|up)\b(\{[^}]*\})?(?!\s*\()")


def substitute(expr: str, variables: dict[str, str]) -> str:
    for name, value in {**TIME_VARIABLES, **variables}.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unknown Grafana variable in: {expr}"
    return expr


def healthy_form(expr: str) -> str:
    """What a silent-when-healthy alert compares: its threshold's left side, or absent()'s
    argument."""
    text = expr.strip()
    inner = re.fullmatch(r"absent\((.*)\)", text, flags=re.DOTALL)
    if inner:
        return inner[1]
    stripped = re.sub(r"\s*>\s*[0-9.]+$", "", text)
    assert stripped != text, f"no final threshold in: {expr}"
    return stripped


@dataclass
class Live:
    e2e: E2E
    operator: Operator
    prometheus: Prometheus
    gateway: Pushgateway


def _push_worker_progress(e2e: E2E) -> None:
    """What a judge worker of demo does: a reporter from its Job's env pushes its progress."""
    job = e2e.get("job", "demo-i1-judge-a0")
    env = {
        item["name"]: item["value"]
        for item in job["spec"]["template"]["spec"]["containers"][0]["env"]
        if "value" in item
    }
    assert progress.PUSHGATEWAY_ENV in env, "the operator did not hand its --pushgateway on"
    for shard, done in ((0, 40), (1, 60)):
        reporter = progress.reporter("judge", shard, namespace=NS, run="demo", environ=env)
        reporter.start(100)
        reporter.advance(done, tokens=50 * done)
        reporter.publish(force=True)
        assert reporter.pushgateway, "the push to the Pushgateway failed"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    workdir = tmp_path_factory.mktemp("live-prometheus")
    with (
        Cluster(bookmark_interval=1.0) as kube,
        Pushgateway(workdir) as gateway,
    ):
        e2e = emulated_e2e(kube, workdir)
        operator = start_operator(e2e, workdir / "operator.log", "--pushgateway", gateway.url)
        try:
            scrape = [
                {
                    "job_name": OPERATOR_JOB,
                    "honor_labels": True,
                    "static_configs": [{"targets": [operator.metrics_url.split("/")[2]]}],
                },
                {
                    "job_name": "pushgateway",
                    "honor_labels": True,
                    "static_configs": [{"targets": [f"127.0.0.1:{gateway.port}"]}],
                },
            ]
            with Prometheus(workdir, scrape_configs=scrape, rule_files=(RULES_FILE,)) as prom:
                # Scraped once before anything happens, as a long-running Prometheus would have.
                prom.wait_for(f'selftaught_runs{{job="{OPERATOR_JOB}"}}')
                _run_the_scenario(e2e)
                _push_worker_progress(e2e)
                yield Live(e2e, operator, prom, gateway)
        finally:
            code = stop_operator(operator)
            assert code == 0, operator.log.read_text()[-3000:]


def _run_the_scenario(e2e: E2E) -> None:
    e2e.kubelet.inject(
        PodFault.EXIT, labels={"selftaught.dev/run": "broken", "selftaught.dev/stage": "select"},
        exit_code=2, message='{"error": "instructions: no line has the field \'instruction\'"}',
    )  # fmt: skip
    for stage in Stage:
        e2e.kubelet.inject(
            PodFault.UNSCHEDULABLE,
            labels={
                "selftaught.dev/run": f"stuck-{stage.value}",
                "selftaught.dev/stage": stage.value,
            },
        )
    demo = run_manifest("demo", iterations=2)
    for gpu_stage in ("judge", "train"):
        demo["spec"]["stages"][gpu_stage]["gpus"] = 1
        # Job times have whole seconds: a GPU stage that "runs" 1.1 s costs >= 1 GPU-second.
        e2e.kubelet.inject(
            PodFault.INSTANT,
            labels={"selftaught.dev/run": "demo", "selftaught.dev/stage": gpu_stage},
            message=json.dumps(SUMMARIES[gpu_stage]),
            delay=1.1,
        )
    for iteration, accuracy in ((1, 0.85), (2, 0.9)):  # a gain, so GPU-hours per point exist
        scores = {"heldout": {"accuracy": accuracy, "examples": 24}}
        e2e.kubelet.inject(
            PodFault.INSTANT,
            labels={
                "selftaught.dev/run": "demo",
                "selftaught.dev/stage": "evaluate",
                "selftaught.dev/iteration": str(iteration),
            },
            message=json.dumps({"scores": scores, "seconds": 1.0}),
        )
    e2e.instant()
    for manifest in (
        demo,
        run_manifest("broken"),
        run_manifest("gone"),
        *(run_manifest(f"stuck-{stage.value}") for stage in Stage),
    ):
        e2e.apply(manifest)
    assert e2e.wait_phase("demo", "Succeeded")["status"]["progress"] == "2/2"
    e2e.wait_phase("broken", "Failed")
    e2e.wait_phase("gone", "Succeeded")
    for stage in Stage:
        e2e.ns(
            "wait", f"--for=jsonpath={{.status.stage}}={stage.value}",
            f"selftaughtrun/stuck-{stage.value}", "--timeout=30s",
        )  # fmt: skip
        assert e2e.get("selftaughtrun", f"stuck-{stage.value}")["status"]["phase"] == "Running"


# ---------------------------------------------------------------------------------- tests


def test_live_metrics_pass_promtool_check_metrics(live: Live) -> None:
    text = live.operator.metrics()
    assert 'selftaught_run_info{namespace="default",run="demo"' in text
    result = check_metrics(text)
    assert result.returncode == 0, result.stdout + result.stderr


def test_both_targets_are_scraped_with_their_own_labels(live: Live) -> None:
    up = live.prometheus.wait_for("up == 1", lambda r: len(r) == 2)
    assert {s["metric"]["job"] for s in up} == {OPERATOR_JOB, "pushgateway"}
    # honor_labels: the run's namespace and the pushed job survive the scrape.
    run = live.prometheus.wait_for('selftaught_run_info{run="demo"}')
    assert run[0]["metric"]["namespace"] == NS
    assert "exported_namespace" not in run[0]["metric"]
    worker = live.prometheus.wait_for(f'selftaught_worker_items_done{{job="{WORKER_JOB}"}}')
    assert {s["metric"]["shard"] for s in worker} == {"0", "1"}


def test_every_dashboard_query_parses_and_returns_data(live: Live, tmp_path: Path) -> None:
    board: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text())
    queries = [
        (f"{where} ({variant})", substitute(expr, variables))
        for variant, variables in VARIABLE_SETS.items()
        for where, expr in _expressions(board)
    ]
    rules = [{"record": f"q{i}", "expr": expr} for i, (_, expr) in enumerate(queries)]
    path = tmp_path / "queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    check_rules(path)
    empty = []
    for where, expr in queries:
        try:
            live.prometheus.wait_for(expr, finite, timeout=10)
        except AssertionError as error:
            empty.append(f"{where}: {error}")
    assert not empty, "queries without data:\n" + "\n".join(empty)


def test_dashboard_panels_show_what_happened(live: Live) -> None:
    """Spot checks of values, not only presence: the counters' first increments are visible."""
    prom = live.prometheus
    board: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text())
    exprs = {where: substitute(e, VARIABLE_SETS["demo"]) for where, e in _expressions(board)}
    by = {panel["title"]: panel["id"] for panel in board["panels"]}

    def query(title: str, ref: str) -> list[Sample]:
        return prom.wait_for(exprs[f"panel {by[title]} {ref}"], finite, timeout=10)

    failed = query("Job failures", "A")
    assert any(
        s["metric"] == {"stage": "select", "reason": "BadInput"} and float(s["value"][1]) > 0
        for s in failed
    ), failed
    created = {s["metric"]["stage"]: float(s["value"][1]) for s in query("Job failures", "B")}
    assert all(created.get(stage.value, 0) > 0 for stage in Stage), created
    p50 = query("Stage duration (p50 / p95)", "A")
    assert {s["metric"]["stage"] for s in p50 if finite([s])} == {s.value for s in Stage}
    progress_ = {s["metric"]["stage"]: float(s["value"][1]) for s in query("Worker progress", "A")}
    assert progress_ == {"judge": pytest.approx(0.5)}  # (40 + 60) / (100 + 100)
    assert values(query("Kept judgments", "A")) == [0.75]
    gpu_hours = {s["metric"]["stage"]: float(s["value"][1]) for s in query("GPU-hours", "A")}
    assert set(gpu_hours) == {"judge", "train"}, gpu_hours  # the stages that asked for a GPU
    assert all(hours > 0 for hours in gpu_hours.values()), gpu_hours
    # Per-iteration panels: the evaluate summaries the kubelet returned (iteration 0 the
    # default 0.75, then the injected gain), and GPU-hours that add up to the panel above.
    accuracy = {
        (s["metric"]["iteration"], s["metric"]["series"]): float(s["value"][1])
        for s in query("Accuracy by iteration", "A")
    }
    heldout = f"{NS}/demo/heldout"
    assert accuracy == {("0", heldout): 0.75, ("1", heldout): 0.85, ("2", heldout): 0.9}
    by_iteration = {
        (s["metric"]["iteration"], s["metric"]["stage"]): float(s["value"][1])
        for s in query("GPU-hours by iteration", "A")
    }
    assert set(by_iteration) == {(i, st) for i in ("1", "2") for st in ("judge", "train")}
    assert all(hours > 0 for hours in by_iteration.values()), by_iteration
    for stage, hours in gpu_hours.items():
        spent = sum(h for (_, st), h in by_iteration.items() if st == stage)
        assert spent == pytest.approx(hours, rel=1e-3), stage


def test_dashboard_variables_list_the_run(live: Live) -> None:
    namespaces = live.prometheus.get(
        "/api/v1/label/namespace/values", **{"match[]": "selftaught_run_info"}
    )["data"]
    assert NS in namespaces
    runs = live.prometheus.get(
        "/api/v1/label/run/values", **{"match[]": f'selftaught_run_info{{namespace=~"{NS}"}}'}
    )["data"]
    assert {"demo", "broken", "stuck-judge"} <= set(runs)


def test_every_alert_expression_returns_data_or_is_silent_by_design(live: Live) -> None:
    check_rules(RULES_FILE)
    prom = live.prometheus
    rules = yaml.safe_load(RULES_FILE.read_text())["groups"][0]["rules"]
    assert {rule["alert"] for rule in rules} == {alert.name for alert in alerts.alerts()}
    assert set(SILENT_WHEN_HEALTHY) < {rule["alert"] for rule in rules}
    for rule in rules:
        where = f"{rule['alert']} {rule.get('labels', {}).get('stage', '')}".strip()
        expr = rule["expr"]
        for selector in {m[0] for m in SELECTOR.finditer(expr)}:
            assert prom.wait_for(selector, timeout=10), f"{where}: {selector} has no data"
        if rule["alert"] in SILENT_WHEN_HEALTHY:
            assert prom.query(expr) == [], f"{where} fires in a healthy cluster"
            prom.wait_for(healthy_form(expr), finite, timeout=10)
        else:
            prom.wait_for(expr, timeout=10)


def test_the_rules_evaluate_without_errors(live: Live) -> None:
    """Loaded into Prometheus and evaluated on live data (many-to-many matches and the like
    only fail at evaluation, never at parse time)."""

    def evaluated(rules: list[dict[str, Any]]) -> bool:
        return all(not r["lastEvaluation"].startswith("0001") for r in rules)

    def rules() -> list[dict[str, Any]]:
        groups = live.prometheus.get("/api/v1/rules")["data"]["groups"]
        return [rule for group in groups for rule in group["rules"]]

    wait_until(lambda: evaluated(rules()), timeout=10, what="every rule evaluated")
    loaded = rules()
    assert len(loaded) == len(alerts.alerts())
    broken = [(r["name"], r.get("lastError")) for r in loaded if r["health"] != "ok"]
    assert not broken, broken
    firing = {r["name"] for r in loaded if r["state"] != "inactive"}
    assert firing == {"SelfTaughtRunFailed"}, firing


def test_a_deleted_runs_series_leave_prometheus(live: Live) -> None:
    prom = live.prometheus
    series = f'{{job="{OPERATOR_JOB}", namespace="{NS}", run="gone"}}'
    before = prom.wait_for(f"count by (__name__) ({series})")
    assert len(before) >= 8, before  # info, phase, stage, iteration, ..., accuracy
    names = {sample["metric"]["__name__"] for sample in before}
    assert "selftaught_iteration_accuracy" in names, names  # the per-iteration series go too
    live.e2e.ns("delete", "selftaughtrun", "gone", "--timeout=30s")
    wait_until(
        lambda: live.operator.sample("selftaught_run_info", run="gone") is None,
        what="the operator forgot the run",
    )
    prom.wait_for(f"count({series})", lambda result: result == [], timeout=20)
    assert prom.query('selftaught_run_info{run="demo"}'), "other runs keep theirs"
