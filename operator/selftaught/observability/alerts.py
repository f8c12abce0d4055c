"""Prometheus alert rules for selftaught, generated from this one source.

The rules land in the chart as ``charts/selftaught/rules/selftaught.rules.yaml`` (a plain
Prometheus rules file, so ``promtool check rules`` and ``promtool test rules`` read it as it is)
and the chart's PrometheusRule template embeds that file as its ``spec``. Each alert carries a
summary, a description and a ``runbook_url`` pointing at its section in
``docs/observability.md``; a test proves every alert has a runbook section there.

Why these thresholds: a stage is "stuck" when it runs far past what a healthy stage of that
kind takes on the paper's scale (20k instructions, 70B judge on one 8-GPU node); the numbers are
deliberately generous, since a false page at 3 a.m. costs more than an hour's delay in noticing
a hung training job. They live in :data:`EXPECTED_STAGE_SECONDS`, documented in the runbook.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from selftaught.observability.catalog import OPERATOR_JOB
from selftaught.phases import Stage

#: Where the runbooks live; each alert links to ``#<alert name in lower case>``.
RUNBOOK_BASE = "https://github.com/selftaught/selftaught/blob/main/docs/observability.md"

#: How long a healthy stage of each kind may run before SelfTaughtStageStuck fires (seconds).
EXPECTED_STAGE_SECONDS: dict[Stage, int] = {
    Stage.SELECT: 4 * 3600,  # one labelling pass over the pool
    Stage.PAIRS: 12 * 3600,  # two generations per instruction, once per run
    Stage.JUDGE: 12 * 3600,  # N=15 judgments per pair
    Stage.TRAIN: 24 * 3600,  # <= 2 epochs of SFT
    Stage.EVALUATE: 6 * 3600,  # held-out pairs + RewardBench-sized sets
}
#: A running run whose last progress is older than this fires SelfTaughtRunNoProgress (seconds).
NO_PROGRESS_SECONDS = 2 * 3600
#: Sustained reconcile errors per second that fire SelfTaughtReconcileErrors.
RECONCILE_ERRORS_PER_SECOND = 0.05
#: Failed Job attempts of one stage and reason within an hour that fire SelfTaughtJobsFailing.
JOB_FAILURES_PER_HOUR = 3

#: Joined with ``* on (namespace, run) group_left ()``: a plain one-to-one ``on`` would keep only
#: the ``on`` labels and drop ``stage``, which the descriptions print.
_RUNNING = '(max by (namespace, run) (selftaught_run_phase{phase="Running"}) == 1)'


@dataclass(frozen=True)
class Alert:
    """One alerting rule, with the text a person on call reads."""

    name: str
    expr: str
    severity: str
    summary: str
    description: str
    for_: str = "0m"
    extra_labels: tuple[tuple[str, str], ...] = ()

    @property
    def runbook_url(self) -> str:
        return f"{RUNBOOK_BASE}#{self.name.lower()}"

    def rule(self) -> dict[str, Any]:
        """The rule as Prometheus' rules file (and PrometheusRule) spell it."""
        rule: dict[str, Any] = {"alert": self.name, "expr": self.expr}
        if self.for_ != "0m":
            rule["for"] = self.for_
        rule["labels"] = {"severity": self.severity, **dict(self.extra_labels)}
        rule["annotations"] = {
            "summary": self.summary,
            "description": self.description,
            "runbook_url": self.runbook_url,
        }
        return rule


def _stage_stuck(stage: Stage, seconds: int) -> Alert:
    """One rule per stage: each kind of stage has its own expected duration."""
    expr = (
        "(time() - max by (namespace, run) (selftaught_run_stage_started_timestamp_seconds))\n"
        "  * on (namespace, run) group_left (stage)\n"
        "    (max by (namespace, run, stage) "
        f'(selftaught_run_stage{{stage="{stage.value}"}}) == 1)\n'
        f"  * on (namespace, run) group_left () {_RUNNING}\n"
        f"> {seconds}"
    )
    return Alert(
        name="SelfTaughtStageStuck",
        expr=expr,
        for_="5m",
        severity="warning",
        summary="A selftaught stage runs far longer than expected.",
        description=(
            "Stage {{ $labels.stage }} of run {{ $labels.namespace }}/{{ $labels.run }} has run "
            "for {{ $value | humanizeDuration }}, longer than the "
            f"{seconds // 3600}h a healthy {stage.value} stage takes."
        ),
        extra_labels=(("stage", stage.value),),
    )


def alerts() -> list[Alert]:
    """Every alert, in the order the rules file lists them."""
    stuck = [_stage_stuck(stage, EXPECTED_STAGE_SECONDS[stage]) for stage in Stage]
    return [
        Alert(
            name="SelfTaughtRunFailed",
            expr='max by (namespace, run) (selftaught_run_phase{phase="Failed"}) == 1',
            for_="1m",
            severity="warning",
            summary="A selftaught run failed.",
            description=(
                "Run {{ $labels.namespace }}/{{ $labels.run }} is in phase Failed. Its status "
                "conditions and Events say why: kubectl -n {{ $labels.namespace }} describe "
                "selftaughtrun {{ $labels.run }}"
            ),
        ),
        *stuck,
        Alert(
            name="SelfTaughtRunNoProgress",
            expr=(
                "(time() - max by (namespace, run) "
                "(selftaught_run_last_progress_timestamp_seconds))\n"
                f"  * on (namespace, run) group_left () {_RUNNING}\n"
                f"> {NO_PROGRESS_SECONDS}"
            ),
            for_="5m",
            severity="warning",
            summary="A running selftaught run makes no progress.",
            description=(
                "Run {{ $labels.namespace }}/{{ $labels.run }} is Running but reported no "
                "progress for {{ $value | humanizeDuration }}: its workers may be hung, "
                "unschedulable or unable to pull their image."
            ),
        ),
        Alert(
            name="SelfTaughtOperatorDown",
            expr=f'absent(up{{job="{OPERATOR_JOB}"}} == 1)',
            for_="5m",
            severity="critical",
            summary="The selftaught operator is down or not scraped.",
            description=(
                f"No healthy scrape target with job={OPERATOR_JOB} for 5 minutes: no run "
                "advances, retries or records its results while the operator is away."
            ),
        ),
        Alert(
            name="SelfTaughtReconcileErrors",
            expr=(
                f"sum(rate(selftaught_reconcile_errors_total[5m])) > {RECONCILE_ERRORS_PER_SECOND}"
            ),
            for_="10m",
            severity="warning",
            summary="The selftaught operator keeps failing to reconcile.",
            description=(
                "{{ $value | humanize }} reconcile errors per second for 10 minutes; runs may "
                "be stuck. The operator's log names the failing runs."
            ),
        ),
        Alert(
            name="SelfTaughtJobsFailing",
            expr=(
                "sum by (stage, reason) (increase(selftaught_jobs_failed_total[1h])) "
                f"> {JOB_FAILURES_PER_HOUR}"
            ),
            severity="warning",
            summary="selftaught worker Jobs keep failing.",
            description=(
                "{{ $value | humanize }} {{ $labels.stage }} attempts failed with reason "
                "{{ $labels.reason }} in the last hour; runs spend their retry budget."
            ),
        ),
    ]


def rule_groups() -> dict[str, Any]:
    """The rules file: one group; also the ``spec`` of the chart's PrometheusRule."""
    return {"groups": [{"name": "selftaught", "rules": [alert.rule() for alert in alerts()]}]}


class _Dumper(yaml.SafeDumper):
    """Writes multi-line PromQL as literal blocks, so the rules file reads like hand-written."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render_yaml() -> str:
    """The rules file's text, byte-stable (the chart's copy is compared with it)."""
    header = (
        "# Generated by `python -m selftaught.observability` from "
        "operator/selftaught/observability/alerts.py.\n"
        "# Do not edit by hand: tests/observability/test_alerts.py fails when they differ.\n"
    )
    body = yaml.dump(rule_groups(), Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)
    return header + body
