"""Operator settings: one pydantic-settings model is the flags, the env vars and their help;
the peering priority a replica runs with."""

from __future__ import annotations

import argparse
from importlib.metadata import version
from pathlib import Path

import pytest

from selftaught.cli import build_parser, main, operator_config
from selftaught.controller.config import OperatorConfig, peering_priority, settings_markdown
from selftaught.jobs import DEFAULT_WORKER_IMAGE


def test_auto_priority_is_stable_per_pod_and_differs_between_pods() -> None:
    """Replicas of one Deployment share '--priority auto' but not their pod names."""
    pods = [f"selftaught-7c9f8d6b5-{suffix}" for suffix in ("x2kqp", "m8rtz", "b4w9n", "q7d2c")]
    priorities = [peering_priority("auto", pod) for pod in pods]
    assert priorities == [peering_priority("AUTO", pod) for pod in pods]  # deterministic
    assert len(set(priorities)) == len(pods)
    assert all(1 <= p <= 1_000_000 for p in priorities)


def test_a_number_is_taken_as_it_is() -> None:
    assert peering_priority("100", "any") == 100
    assert peering_priority("-5", "any") == -5


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(
            ["--priority", "highest"], "'highest' is not a number or 'auto'", id="priority"
        ),
        pytest.param(["--peering-lifetime", "1"], "too short", id="lifetime-too-short"),
    ],
)
def test_a_bad_peering_flag_is_refused_naming_it(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["operator", *argv])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert argv[0] in error
    assert message in error


# --------------------------------------------- one source: flags and env vars from the fields


def operator_args(*argv: str) -> OperatorConfig:
    return operator_config(build_parser().parse_args(["operator", *argv]))


def test_every_setting_is_a_flag_whose_help_shows_its_default_and_variable() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    operator = commands.choices["operator"]
    flags = {a.dest: a for a in operator._actions if a.dest not in ("help", "verbose")}
    assert set(flags) == set(OperatorConfig.model_fields)
    for name, action in flags.items():
        assert action.help is not None
        assert "(default: " in action.help, name
        assert OperatorConfig.env_name(name) in action.help, name
        assert OperatorConfig.model_fields[name].description, f"{name} has no docstring"
    assert "(default: " in (flags["metrics_port"].help or "")
    assert "9090" in (flags["metrics_port"].help or "")


def test_the_chart_arguments_still_parse() -> None:
    """The flags charts/selftaught/templates/deployment.yaml renders (names kept)."""
    config = operator_args(
        "--metrics-port=9090", "--liveness=http://0.0.0.0:8080/healthz",
        "--namespace=ml-team", "--namespace=research",
        "--peering=selftaught", "--priority=auto", "--peering-lifetime=15",
        "--workers", "8", "--resync-seconds", "5", "--relist-seconds", "30",
        "--job-ttl-seconds", "600", "--worker-image", "registry/worker:1", "--pushgateway", "",
    )  # fmt: skip
    assert config.namespaces == ("ml-team", "research")
    assert config.peering == "selftaught"
    assert not config.standalone
    assert 1 <= config.priority <= 1_000_000
    assert config.peering_lifetime == 15
    assert (config.workers, config.resync_seconds, config.relist_seconds) == (8, 5.0, 30.0)
    assert config.jobs.ttl_seconds_after_finished == 600
    assert config.jobs.worker_image == "registry/worker:1"
    assert config.jobs.pushgateway is None  # an empty flag is unset


def test_defaults_without_flags_or_environment() -> None:
    config = operator_args()
    assert config == OperatorConfig()
    assert config.standalone
    assert config.namespaces == ()
    assert config.metrics_port == 9090
    assert config.jobs.worker_image == DEFAULT_WORKER_IMAGE


def test_the_environment_sets_what_no_flag_gives_and_a_flag_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SELFTAUGHT_WORKER_IMAGE", "from-env/worker:2")
    monkeypatch.setenv("SELFTAUGHT_PUSHGATEWAY_URL", "http://pushgateway:9091")
    monkeypatch.setenv("SELFTAUGHT_METRICS_PORT", "9100")
    monkeypatch.setenv("SELFTAUGHT_NAMESPACES", '["a", "b"]')
    config = operator_args("--metrics-port", "9200")
    assert config.metrics_port == 9200
    assert config.namespaces == ("a", "b")
    assert config.jobs.worker_image == "from-env/worker:2"
    assert config.jobs.pushgateway == "http://pushgateway:9091"


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        pytest.param(["--workers", "0"], {}, "argument --workers: Input should be greater",
                     id="flag-out-of-range"),
        pytest.param([], {"SELFTAUGHT_METRICS_PORT": "abc"},
                     "environment variable SELFTAUGHT_METRICS_PORT: Input should be a valid "
                     "integer", id="env-not-a-number"),
    ],
)  # fmt: skip
def test_a_bad_setting_names_its_flag_or_variable(
    argv: list[str],
    env: dict[str, str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as exited:
        main(["operator", *argv])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"selftaught {version('selftaught')}"


def test_the_settings_table_in_the_docs_is_the_model() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "operator.md").read_text()
    assert settings_markdown() in docs
