"""Serving metrics: ready replicas and the served iteration per run, gone with the server."""

from __future__ import annotations

from selftaught.api import ServingStatus
from selftaught.metrics import Metrics
from tests.unit.planning import make_run

KEY = {"namespace": "ns", "run": "demo"}


def test_serving_series_follow_status_and_go_when_serving_stops() -> None:
    metrics = Metrics()
    run = make_run(serve={})
    value = metrics.registry.get_sample_value
    metrics.observe_run(run)
    assert value("selftaught_serving_ready_replicas", KEY) is None  # nothing served yet
    run.status.serving = ServingStatus(model_uri="s3://m", iteration=2, replicas=2,
                                       ready_replicas=1)  # fmt: skip
    metrics.observe_run(run)
    assert value("selftaught_serving_ready_replicas", KEY) == 1.0
    assert value("selftaught_serving_iteration", KEY) == 2.0
    run.status.serving = None
    metrics.observe_run(run)
    assert value("selftaught_serving_iteration", KEY) is None
    run.status.serving = ServingStatus(model_uri="s3://m", iteration=3, ready_replicas=1)
    metrics.observe_run(run)
    metrics.forget_run("ns", "demo")
    assert value("selftaught_serving_ready_replicas", KEY) is None
