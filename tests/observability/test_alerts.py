"""The alert rules: generated file in sync, accepted by promtool, and every alert proven to fire
on the situation it names and to stay silent on the healthy look-alike (``promtool test rules``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from selftaught.observability import alerts
from selftaught.observability.__main__ import RULES_PATH
from selftaught.observability.catalog import OPERATOR_JOB, SERIES_NAMES
from tests.chart.rendering import CHART_DIR, REPO
from tests.observability.promtool import check_rules, run_rule_tests

RULES_FILE = CHART_DIR / RULES_PATH
RUNBOOKS = REPO / "docs" / "observability.md"
NS = "ml"


def test_committed_rules_equal_the_generator() -> None:
    assert RULES_FILE.read_text() == alerts.render_yaml(), "run: python -m selftaught.observability"


def test_promtool_accepts_the_rules() -> None:
    check_rules(RULES_FILE)


def test_promtool_rejects_a_broken_rule(tmp_path: Path) -> None:
    """The check really parses PromQL: a broken expression fails."""
    broken = alerts.rule_groups()
    broken["groups"][0]["rules"][0]["expr"] = "max by (namespace (selftaught_run_phase"
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(broken))
    with pytest.raises(AssertionError):
        check_rules(path)


def test_every_alert_explains_itself_and_has_a_runbook() -> None:
    runbooks = RUNBOOKS.read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")
        for heading in re.findall(r"^#{2,4} (.+)$", runbooks, flags=re.MULTILINE)
    }
    for alert in alerts.alerts():
        rule = alert.rule()
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]
        assert rule["annotations"]["description"]
        anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
        assert anchor in anchors, f"docs/observability.md has no section for {alert.name}"


def test_alerts_use_only_exported_metrics() -> None:
    for alert in alerts.alerts():
        names = set(re.findall(r"\b(selftaught_\w+|up)\b(?=\s*[{\[)])", alert.expr))
        assert names, alert.expr
        assert names - {"up"} <= SERIES_NAMES, alert.name


# --------------------------------------------------------------------- promtool test rules

HOUR = 3600


def _series(name: str, values: str, **labels: str) -> dict[str, str]:
    rendered = ", ".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    return {"series": f"{name}{{{rendered}}}", "values": values}


def _run(run: str, *, phase: str, stage: str, started: float, progress: str, n: int) -> list[Any]:
    """The operator's series for one run, constant over ``n`` minutes (progress may move)."""
    out = [
        _series(
            "selftaught_run_stage_started_timestamp_seconds",
            f"{started}x{n}",
            namespace=NS,
            run=run,
        )
    ]
    out.append(
        _series("selftaught_run_last_progress_timestamp_seconds", progress, namespace=NS, run=run)
    )
    for name in ("Pending", "Running", "Suspended", "Succeeded", "Failed"):
        value = 1 if name == phase else 0
        out.append(
            _series("selftaught_run_phase", f"{value}x{n}", namespace=NS, run=run, phase=name)
        )
    for name in ("select", "pairs", "judge", "train", "evaluate"):
        value = 1 if name == stage else 0
        out.append(
            _series("selftaught_run_stage", f"{value}x{n}", namespace=NS, run=run, stage=name)
        )
    return out


def _firing(name: str, value: str = "", **labels: str) -> dict[str, Any]:
    """An expected alert, its annotations rendered the way Prometheus renders them."""
    (alert,) = [
        a
        for a in alerts.alerts()
        if a.name == name and all(v == labels.get(k) for k, v in a.extra_labels)
    ]
    rule = alert.rule()
    all_labels = {**rule["labels"], **labels}

    def fill(text: str) -> str:
        text = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: all_labels[m.group(1)], text)
        return re.sub(r"\{\{ \$value \| humanize(Duration)? \}\}", value, text)

    return {
        "exp_labels": all_labels,
        "exp_annotations": {key: fill(text) for key, text in rule["annotations"].items()},
    }


def _unit_tests() -> list[dict[str, Any]]:
    """One group per alert; each checks the firing case and the healthy look-alike."""
    n = 26 * 60 + 30  # minutes of data: enough for the longest expected stage (24h)
    stuck = [
        # train for 25h: past its 24h; judge for 25h: past its 12h.
        *_run("slow-train", phase="Running", stage="train", started=0, progress=f"0+60x{n}", n=n),
        *_run("slow-judge", phase="Running", stage="judge", started=0, progress=f"0+60x{n}", n=n),
        # train started at 20h: only 5h at 25h. Suspended in train for 25h: not running.
        *_run(
            "fresh", phase="Running", stage="train", started=20 * HOUR, progress=f"0+60x{n}", n=n
        ),
        *_run("paused", phase="Suspended", stage="train", started=0, progress=f"0x{n}", n=n),
    ]
    hung = [
        *_run("hung", phase="Running", stage="judge", started=0, progress="0x200", n=200),
        *_run("moving", phase="Running", stage="judge", started=0, progress="0+60x200", n=200),
        *_run("done", phase="Succeeded", stage="evaluate", started=0, progress="0x200", n=200),
    ]
    return [
        {
            "name": "run failed / healthy run",
            "interval": "1m",
            "input_series": [
                _series(
                    "selftaught_run_phase", "0 0 1x10", namespace=NS, run="bad", phase="Failed"
                ),
                _series("selftaught_run_phase", "0x12", namespace=NS, run="good", phase="Failed"),
            ],
            "alert_rule_test": [
                {"eval_time": "1m", "alertname": "SelfTaughtRunFailed", "exp_alerts": []},
                {
                    "eval_time": "5m",
                    "alertname": "SelfTaughtRunFailed",
                    "exp_alerts": [_firing("SelfTaughtRunFailed", namespace=NS, run="bad")],
                },
            ],
        },
        {
            "name": "stage stuck per stage / fresh or suspended",
            "interval": "1m",
            "input_series": stuck,
            "alert_rule_test": [
                {"eval_time": "11h", "alertname": "SelfTaughtStageStuck", "exp_alerts": []},
                {
                    "eval_time": "13h",
                    "alertname": "SelfTaughtStageStuck",
                    "exp_alerts": [
                        _firing(
                            "SelfTaughtStageStuck",
                            "13h 0m 0s",
                            namespace=NS,
                            run="slow-judge",
                            stage="judge",
                        )
                    ],
                },
                {
                    "eval_time": "25h",
                    "alertname": "SelfTaughtStageStuck",
                    "exp_alerts": [
                        _firing(
                            "SelfTaughtStageStuck",
                            "1d 1h 0m 0s",
                            namespace=NS,
                            run="slow-judge",
                            stage="judge",
                        ),
                        _firing(
                            "SelfTaughtStageStuck",
                            "1d 1h 0m 0s",
                            namespace=NS,
                            run="slow-train",
                            stage="train",
                        ),
                    ],
                },
            ],
        },
        {
            "name": "no progress / progressing or finished",
            "interval": "1m",
            "input_series": hung,
            "alert_rule_test": [
                {"eval_time": "1h", "alertname": "SelfTaughtRunNoProgress", "exp_alerts": []},
                {
                    "eval_time": "2h10m",
                    "alertname": "SelfTaughtRunNoProgress",
                    "exp_alerts": [
                        _firing("SelfTaughtRunNoProgress", "2h 10m 0s", namespace=NS, run="hung")
                    ],
                },
            ],
        },
        {
            "name": "operator down after being up",
            "interval": "1m",
            "input_series": [
                _series("up", "1x10 0x20", job=OPERATOR_JOB, instance="10.0.0.7:9090"),
            ],
            "alert_rule_test": [
                {"eval_time": "10m", "alertname": "SelfTaughtOperatorDown", "exp_alerts": []},
                {"eval_time": "14m", "alertname": "SelfTaughtOperatorDown", "exp_alerts": []},
                {
                    "eval_time": "20m",
                    "alertname": "SelfTaughtOperatorDown",
                    "exp_alerts": [_firing("SelfTaughtOperatorDown")],
                },
            ],
        },
        {
            "name": "operator never scraped",
            "interval": "1m",
            "input_series": [_series("up", "1x30", job="something-else", instance="x:1")],
            "alert_rule_test": [
                {
                    "eval_time": "10m",
                    "alertname": "SelfTaughtOperatorDown",
                    "exp_alerts": [_firing("SelfTaughtOperatorDown")],
                },
            ],
        },
        {
            "name": "occasional reconcile errors",
            "interval": "1m",
            "input_series": [
                _series("selftaught_reconcile_errors_total", "0+1x60", job=OPERATOR_JOB)
            ],
            "alert_rule_test": [
                {"eval_time": "40m", "alertname": "SelfTaughtReconcileErrors", "exp_alerts": []}
            ],
        },
        {
            "name": "sustained reconcile errors",
            "interval": "1m",
            "input_series": [
                _series("selftaught_reconcile_errors_total", "0+6x60", job=OPERATOR_JOB)
            ],
            "alert_rule_test": [
                {"eval_time": "8m", "alertname": "SelfTaughtReconcileErrors", "exp_alerts": []},
                {
                    "eval_time": "30m",
                    "alertname": "SelfTaughtReconcileErrors",
                    "exp_alerts": [_firing("SelfTaughtReconcileErrors", "100m")],
                },
            ],
        },
        {
            "name": "jobs failing / one failure",
            "interval": "1m",
            "input_series": [
                _series(
                    "selftaught_jobs_failed_total", "0+1x60", stage="judge", reason="OOMKilled"
                ),
                _series(
                    "selftaught_jobs_failed_total", "0 0 1x58", stage="train", reason="ProgramError"
                ),
            ],
            "alert_rule_test": [
                {"eval_time": "2m", "alertname": "SelfTaughtJobsFailing", "exp_alerts": []},
                {
                    "eval_time": "30m",
                    "alertname": "SelfTaughtJobsFailing",
                    "exp_alerts": [
                        _firing("SelfTaughtJobsFailing", "30", stage="judge", reason="OOMKilled")
                    ],
                },
            ],
        },
    ]


def test_every_alert_fires_and_stays_silent_where_it_should(tmp_path: Path) -> None:
    tests = _unit_tests()
    tested = {
        (case["alertname"], bool(case["exp_alerts"]))
        for group in tests
        for case in group["alert_rule_test"]
    }
    for alert in alerts.alerts():
        assert (alert.name, True) in tested, f"{alert.name} is never shown firing"
        assert (alert.name, False) in tested, f"{alert.name} is never shown silent"
    rules = tmp_path / "selftaught.rules.yaml"
    rules.write_text(RULES_FILE.read_text())
    spec = tmp_path / "tests.yaml"
    spec.write_text(
        yaml.safe_dump(
            {"rule_files": [rules.name], "evaluation_interval": "1m", "tests": tests},
            sort_keys=False,
        )
    )
    result = run_rule_tests(spec)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
