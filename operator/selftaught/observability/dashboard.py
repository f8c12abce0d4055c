"""The selftaught Grafana dashboard, built with Grafana's own ``grafana-foundation-sdk``.

The builder's JSON is committed into the chart (``charts/selftaught/dashboards/selftaught.json``)
and shipped in a ConfigMap labelled ``grafana_dashboard: "1"`` for Grafana's sidecar. Every
query goes through the ``$datasource`` variable (no hard-coded datasource uid, so the dashboard
imports into any Grafana), and the run-level panels filter on ``$namespace`` and ``$run``.

Panels are placed on explicit grid positions rather than the SDK's auto-flow: the layout is
then stated once, here, and a test can prove no two panels overlap.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from grafana_foundation_sdk.builders import (
    barchart,
    bargauge,
    dashboard,
    prometheus,
    stat,
    statetimeline,
    table,
    timeseries,
)
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.cog import variants
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    DataTransformerConfig,
    GridPos,
    ValueMap,
    ValueMappingResult,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from selftaught.observability.catalog import OPERATOR_JOB, STAGES, WORKER_JOB

UID = "selftaught-runs"
TITLE = "selftaught: self-taught judge runs"
#: Every query and panel points here; the variable lets a user pick their Prometheus.
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
#: The run filter every run-level query carries.
RUN_FILTER = 'namespace=~"$namespace", run=~"$run"'

_PALETTE = ("blue", "purple", "orange", "green", "yellow")


@dataclass(frozen=True)
class Query:
    """One PromQL target: expression, legend, and whether Grafana asks for an instant value."""

    expr: str
    legend: str = ""
    instant: bool = False
    table: bool = False


def _targets(queries: list[Query]) -> list[Builder[variants.Dataquery]]:
    """SDK targets with ref ids A, B, ... all on the ``$datasource`` variable."""
    built: list[Builder[variants.Dataquery]] = []
    for index, query in enumerate(queries):
        target = (
            prometheus.Dataquery()
            .ref_id(chr(ord("A") + index))
            .expr(query.expr)
            .datasource(DATASOURCE)
        )
        target = target.instant() if query.instant else target.range()
        if query.legend:
            target = target.legend_format(query.legend)
        if query.table:
            target = target.format(PromQueryFormat.TABLE)
        built.append(target)
    return built


def _grid(x: int, y: int, w: int, h: int) -> GridPos:
    return GridPos(x=x, y=y, w=w, h=h)


def _last_value() -> common_builders.ReduceDataOptions:
    """Stat and bar-gauge panels show each series' last value (Grafana's null would too, but
    stating it keeps the JSON free of ``"options": null``)."""
    return common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def _legend() -> common_builders.VizLegendOptions:
    """Time-series legends: a list under the graph."""
    return (
        common_builders.VizLegendOptions()
        .display_mode(common.LegendDisplayMode.LIST)
        .placement(common.LegendPlacement.BOTTOM)
        .show_legend(True)
    )


def _variables() -> list[dashboard.DatasourceVariable | dashboard.QueryVariable]:
    """``datasource``, then ``namespace`` and ``run``, each narrowing the next."""
    datasource = dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")
    namespace = (
        dashboard.QueryVariable("namespace")
        .label("Namespace")
        .datasource(DATASOURCE)
        .query("label_values(selftaught_run_info, namespace)")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )
    run = (
        dashboard.QueryVariable("run")
        .label("Run")
        .datasource(DATASOURCE)
        .query('label_values(selftaught_run_info{namespace=~"$namespace"}, run)')
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )
    return [datasource, namespace, run]


def _runs_by_phase() -> stat.Panel:
    return (
        stat.Panel()
        .id(1)
        .title("Runs by phase")
        .description("All runs the operator watches, by phase (not filtered by the variables).")
        .datasource(DATASOURCE)
        .targets(_targets([Query("sum by (phase) (selftaught_runs)", "{{phase}}", instant=True)]))
        .reduce_options(_last_value())
        .grid_pos(_grid(0, 0, 6, 8))
    )


def _runs_table() -> table.Panel:
    """One row per run: seed, phase, iteration/planned, best accuracy (joined on the labels)."""
    by_run = "max by (namespace, run)"
    queries = [
        Query(f"max by (namespace, run, seed_model) (selftaught_run_info{{{RUN_FILTER}}})"),
        Query(f"max by (namespace, run, phase) (selftaught_run_phase{{{RUN_FILTER}}} == 1)"),
        Query(f"{by_run} (selftaught_run_iteration{{{RUN_FILTER}}})"),
        Query(f"{by_run} (selftaught_run_iterations_planned{{{RUN_FILTER}}})"),
        Query(
            f"max by (namespace, run, eval_set) (selftaught_judge_best_accuracy{{{RUN_FILTER}}})"
        ),
    ]
    queries = [Query(q.expr, instant=True, table=True) for q in queries]
    return (
        table.Panel()
        .id(2)
        .title("Runs")
        .description("Each run's seed model, phase, iteration and best accuracy per eval set.")
        .datasource(DATASOURCE)
        .targets(_targets(queries))
        .show_header(True)
        .with_transformation(DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            DataTransformerConfig(
                id_val="organize",
                options={
                    "excludeByName": {"Time": True, "Value #A": True, "Value #B": True},
                    "renameByName": {
                        "Value #C": "iteration",
                        "Value #D": "planned",
                        "Value #E": "best accuracy",
                        "seed_model": "seed model",
                        "eval_set": "eval set",
                    },
                },
            )
        )
        .grid_pos(_grid(6, 0, 18, 8))
    )


def _stage_timeline() -> statetimeline.Panel:
    """The current stage of each run over time, encoded 1..5 and mapped back to names.

    ``selftaught_run_stage`` is 1 for the current stage and 0 for the others, so multiplying
    each stage's series by its position and summing per run yields one series per run whose
    value names the stage (0 when no stage runs, e.g. after the run ended).
    """
    parts = [
        f'selftaught_run_stage{{{RUN_FILTER}, stage="{stage}"}} * {index}'
        for index, stage in enumerate(STAGES, start=1)
    ]
    expr = "sum by (namespace, run) (\n    " + "\n  or ".join(parts) + "\n)"
    options = {"0": ValueMappingResult(text="idle", color="transparent", index=0)}
    for index, stage in enumerate(STAGES, start=1):
        options[str(index)] = ValueMappingResult(text=stage, color=_PALETTE[index - 1], index=index)
    return (
        statetimeline.Panel()
        .id(3)
        .title("Stage timeline")
        .description("Which stage each run was in, over time.")
        .datasource(DATASOURCE)
        .targets(_targets([Query(expr, "{{namespace}}/{{run}}")]))
        .mappings([ValueMap(options=options)])
        .merge_values(True)
        .show_value(common.VisibilityMode.AUTO)
        .grid_pos(_grid(0, 8, 24, 8))
    )


def _accuracy() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .id(4)
        .title("Judge accuracy over time")
        .description(
            "Pairwise accuracy of the latest judge (solid) and the best so far (dashed), per "
            "eval set. Iteration 0 is the seed's baseline; each step is one iteration."
        )
        .datasource(DATASOURCE)
        .targets(
            _targets(
                [
                    Query(
                        f"selftaught_judge_accuracy{{{RUN_FILTER}}}",
                        "{{run}} {{eval_set}}",
                    ),
                    Query(
                        f"selftaught_judge_best_accuracy{{{RUN_FILTER}}}",
                        "{{run}} {{eval_set}} best",
                    ),
                ]
            )
        )
        .unit("percentunit")
        .min(0)
        .max(1)
        .legend(_legend())
        .draw_style(common.GraphDrawStyle.LINE)
        .line_interpolation(common.LineInterpolation.STEP_AFTER)
        .grid_pos(_grid(0, 16, 12, 8))
    )


def _kept_ratio() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .id(5)
        .title("Kept judgments")
        .description(
            "Share of pairs with at least one correct judgment (rejection sampling). A falling "
            "ratio means the judge gets worse at the synthetic pairs, or they got harder."
        )
        .datasource(DATASOURCE)
        .targets(
            _targets(
                [Query(f"selftaught_judgments_kept_ratio{{{RUN_FILTER}}}", "{{namespace}}/{{run}}")]
            )
        )
        .unit("percentunit")
        .min(0)
        .max(1)
        .line_interpolation(common.LineInterpolation.STEP_AFTER)
        .legend(_legend())
        .grid_pos(_grid(12, 16, 12, 8))
    )


def _gpu_hours() -> bargauge.Panel:
    expr = f"sum by (run, stage) (selftaught_gpu_seconds_total{{{RUN_FILTER}}}) / 3600"
    return (
        bargauge.Panel()
        .id(6)
        .title("GPU-hours")
        .description("GPU-hours each run has spent, by stage.")
        .datasource(DATASOURCE)
        .targets(_targets([Query(expr, "{{run}} {{stage}}", instant=True)]))
        .unit("h")
        .orientation(common.VizOrientation.HORIZONTAL)
        .reduce_options(_last_value())
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        .grid_pos(_grid(0, 24, 8, 8))
    )


def _stage_durations() -> bargauge.Panel:
    """Quantiles over the dashboard's range: stages take hours, so a 5m rate is mostly empty."""
    bucket = "sum by (le, stage) (increase(selftaught_stage_duration_seconds_bucket[$__range]))"
    return (
        bargauge.Panel()
        .id(7)
        .title("Stage duration (p50 / p95)")
        .description("Durations of stages that finished in the selected time range.")
        .datasource(DATASOURCE)
        .targets(
            _targets(
                [
                    Query(f"histogram_quantile(0.5, {bucket})", "{{stage}} p50", instant=True),
                    Query(f"histogram_quantile(0.95, {bucket})", "{{stage}} p95", instant=True),
                ]
            )
        )
        .unit("s")
        .orientation(common.VizOrientation.HORIZONTAL)
        .reduce_options(_last_value())
        .grid_pos(_grid(8, 24, 8, 8))
    )


def _job_failures() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .id(8)
        .title("Job failures")
        .description("Failed worker attempts by stage and reason, next to Jobs created.")
        .datasource(DATASOURCE)
        .targets(
            _targets(
                [
                    Query(
                        "sum by (stage, reason) "
                        "(increase(selftaught_jobs_failed_total[$__rate_interval]))",
                        "failed {{stage}} {{reason}}",
                    ),
                    Query(
                        "sum by (stage) "
                        "(increase(selftaught_jobs_created_total[$__rate_interval]))",
                        "created {{stage}}",
                    ),
                ]
            )
        )
        .draw_style(common.GraphDrawStyle.BARS)
        .legend(_legend())
        .grid_pos(_grid(16, 24, 8, 8))
    )


def _reconcile() -> timeseries.Panel:
    bucket = "sum by (le) (rate(selftaught_reconcile_duration_seconds_bucket[$__rate_interval]))"
    return (
        timeseries.Panel()
        .id(9)
        .title("Reconcile latency and errors")
        .description("Operator reconcile latency quantiles and errors per second.")
        .datasource(DATASOURCE)
        .targets(
            _targets(
                [
                    Query(f"histogram_quantile(0.5, {bucket})", "p50"),
                    Query(f"histogram_quantile(0.99, {bucket})", "p99"),
                    Query(
                        "sum(rate(selftaught_reconcile_errors_total[$__rate_interval]))",
                        "errors/s",
                    ),
                    Query(f'up{{job="{OPERATOR_JOB}"}}', "up {{instance}}"),
                ]
            )
        )
        .unit("s")
        .legend(_legend())
        .grid_pos(_grid(0, 32, 8, 8))
    )


def _worker_progress() -> bargauge.Panel:
    worker = f'job="{WORKER_JOB}", {RUN_FILTER}'
    by = "sum by (namespace, run, stage)"
    expr = (
        f"{by} (selftaught_worker_items_done{{{worker}}})\n"
        f"  / {by} (selftaught_worker_items_total{{{worker}}} > 0)"
    )
    return (
        bargauge.Panel()
        .id(10)
        .title("Worker progress")
        .description("Items done / items planned of each running stage, over all its shards.")
        .datasource(DATASOURCE)
        .targets(_targets([Query(expr, "{{run}} {{stage}}", instant=True)]))
        .unit("percentunit")
        .min(0)
        .max(1)
        .orientation(common.VizOrientation.HORIZONTAL)
        .reduce_options(_last_value())
        .display_mode(common.BarGaugeDisplayMode.LCD)
        .grid_pos(_grid(8, 32, 8, 8))
    )


def _worker_throughput() -> timeseries.Panel:
    expr = (
        "sum by (namespace, run, stage) "
        f'(selftaught_worker_tokens_per_second{{job="{WORKER_JOB}", {RUN_FILTER}}})'
    )
    return (
        timeseries.Panel()
        .id(11)
        .title("Worker throughput")
        .description("Generated tokens per second, summed over a stage's shards.")
        .datasource(DATASOURCE)
        .targets(_targets([Query(expr, "{{run}} {{stage}}")]))
        .unit("short")
        .legend(_legend())
        .grid_pos(_grid(16, 32, 8, 8))
    )


def _judging_cost() -> timeseries.Panel:
    """Tokens per kept judgment: N x tokens per sample with fixed sampling, about
    1/accuracy x tokens per sample with adaptive sampling."""
    return (
        timeseries.Panel()
        .id(12)
        .title("Judging cost")
        .description(
            "Latest judge stage: generated tokens per kept judgment, samples drawn and tokens "
            "generated (all shards). Adaptive sampling (judging.sampling) lowers the first."
        )
        .datasource(DATASOURCE)
        .targets(
            _targets(
                [
                    Query(
                        f"selftaught_judging_tokens_per_kept{{{RUN_FILTER}}}",
                        "{{run}} tokens/kept",
                    ),
                    Query(f"selftaught_judging_samples{{{RUN_FILTER}}}", "{{run}} samples"),
                    Query(
                        f"selftaught_judging_generated_tokens{{{RUN_FILTER}}}",
                        "{{run}} tokens",
                    ),
                ]
            )
        )
        .unit("short")
        .line_interpolation(common.LineInterpolation.STEP_AFTER)
        .legend(_legend())
        .grid_pos(_grid(0, 40, 12, 8))
    )


def _gpu_hours_per_point() -> timeseries.Panel:
    expr = f"selftaught_gpu_seconds_per_accuracy_point{{{RUN_FILTER}}} / 3600"
    return (
        timeseries.Panel()
        .id(13)
        .title("GPU-hours per accuracy point")
        .description(
            "GPU-hours the run has spent so far per percentage point of held-out accuracy "
            "gained over the seed (iteration 0); no value until an iteration gains."
        )
        .datasource(DATASOURCE)
        .targets(_targets([Query(expr, "{{namespace}}/{{run}}")]))
        .unit("h")
        .min(0)
        .line_interpolation(common.LineInterpolation.STEP_AFTER)
        .legend(_legend())
        .grid_pos(_grid(12, 40, 12, 8))
    )


def _by_iteration(column: str) -> list[DataTransformerConfig]:
    """Grafana transformations that turn an instant table (one row per iteration and
    ``column``) into one row per iteration with a column per ``column`` value, iterations in
    numeric order: the shape a bar chart with the iteration on its x axis needs.

    Label values are strings ("10" sorts before "2"), hence the conversion to a number before
    sorting; grouping-to-matrix keeps the rows in the order it meets them and names its first
    field ``iteration\\<column>``, which the last step renames back to ``iteration``.
    """
    return [
        DataTransformerConfig(
            id_val="convertFieldType",
            options={
                "conversions": [{"targetField": "iteration", "destinationType": "number"}],
                "fields": {},
            },
        ),
        DataTransformerConfig(
            id_val="sortBy", options={"fields": {}, "sort": [{"field": "iteration"}]}
        ),
        DataTransformerConfig(
            id_val="groupingToMatrix",
            options={
                "rowField": "iteration",
                "columnField": column,
                "valueField": "Value",
                "emptyValue": "null",
            },
        ),
        DataTransformerConfig(
            id_val="organize",
            options={"renameByName": {f"iteration\\{column}": "iteration"}},
        ),
    ]


def _accuracy_by_iteration() -> barchart.Panel:
    """One group of bars per iteration, a bar per run and eval set (``series`` joins them, so
    runs of the same name in two namespaces stay apart)."""
    expr = (
        "label_join(max by (namespace, run, iteration, eval_set) "
        f'(selftaught_iteration_accuracy{{{RUN_FILTER}}}), "series", "/", '
        '"namespace", "run", "eval_set")'
    )
    return (
        barchart.Panel()
        .id(14)
        .title("Accuracy by iteration")
        .description(
            "Pairwise accuracy of each iteration's judge, per run and eval set; iteration 0 is "
            "the seed's baseline. Pick one run to read its whole story at a glance."
        )
        .datasource(DATASOURCE)
        .targets(_targets([Query(expr, instant=True, table=True)]))
        .transformations(_by_iteration("series"))
        .x_field("iteration")
        .unit("percentunit")
        .min(0)
        .max(1)
        .stacking(common.StackingMode.NONE)
        .show_value(common.VisibilityMode.AUTO)
        .legend(_legend())
        .grid_pos(_grid(0, 48, 12, 8))
    )


def _gpu_hours_by_iteration() -> barchart.Panel:
    """GPU-hours of each iteration, stacked by stage (summed over the selected runs)."""
    expr = f"sum by (iteration, stage) (selftaught_iteration_gpu_seconds{{{RUN_FILTER}}}) / 3600"
    return (
        barchart.Panel()
        .id(15)
        .title("GPU-hours by iteration")
        .description(
            "GPU-hours each iteration spent, stacked by stage (stages without GPUs are left "
            "out). With several runs selected the bars add them up: pick one run."
        )
        .datasource(DATASOURCE)
        .targets(_targets([Query(expr, instant=True, table=True)]))
        .transformations(_by_iteration("stage"))
        .x_field("iteration")
        .unit("h")
        .min(0)
        .stacking(common.StackingMode.NORMAL)
        .show_value(common.VisibilityMode.AUTO)
        .legend(_legend())
        .grid_pos(_grid(12, 48, 12, 8))
    )


def build() -> dashboard.Dashboard:
    """The dashboard builder; ``build().build()`` is the SDK model."""
    board = (
        dashboard.Dashboard(TITLE)
        .uid(UID)
        .tags(["selftaught", "llm", "kubernetes"])
        .description("Self-taught judge runs: stages, accuracy, GPU-hours, operator health.")
        .time("now-7d", "now")
        .refresh("1m")
        .timezone("browser")
        .editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)  # one crosshair across panels
    )
    for variable in _variables():
        board = board.with_variable(variable)
    for panel in (
        _runs_by_phase(),
        _runs_table(),
        _stage_timeline(),
        _accuracy(),
        _kept_ratio(),
        _gpu_hours(),
        _stage_durations(),
        _job_failures(),
        _reconcile(),
        _worker_progress(),
        _worker_throughput(),
        _judging_cost(),
        _gpu_hours_per_point(),
        _accuracy_by_iteration(),
        _gpu_hours_by_iteration(),
    ):
        board = board.with_panel(panel)
    return board


def render_json() -> str:
    """The dashboard JSON, byte-stable (the chart's copy is compared with it)."""
    model = build().build()
    return json.dumps(model, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"
