"""`selftaught serve RUN_DIR`: the OpenAI-compatible endpoint on a local run's best judge.

A run directory exactly as ``selftaught run`` leaves it, whose best iteration is the seed (the
tiny judge from the suite's model cache), so this needs no training; the quick start's own
result is served in tests/integration/test_local_run.py.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from selftaught.prompts import parse_verdict
from tests.integration.serving import SEED, call, seed_run, served, write_run


@pytest.fixture(scope="module")
def judge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with served(seed_run(tmp_path_factory.mktemp("serve") / "demo")) as url:
        yield url


def ask(url: str, **extra: object) -> tuple[int, dict[str, object]]:
    """A question of the seen kind (max): the seed judge answers those with a verdict."""
    body = {
        "model": "demo",
        "messages": [{"role": "user", "content": "judge: max 3 9 1 4 | A: 9 | B: 4"}],
        "max_tokens": 48,
        **extra,
    }
    return call("POST", f"{url}/v1/chat/completions", body)


def test_health_and_models_name_the_run_and_its_best_model(judge: str) -> None:
    assert call("GET", f"{judge}/health") == (200, {"status": "ok", "model": "demo"})
    status, models = call("GET", f"{judge}/v1/models")
    assert status == 200
    assert [(m["id"], m["root"], m["prompt_style"]) for m in models["data"]] == [
        ("demo", SEED, "compact")
    ]


def test_a_greedy_chat_completion_is_a_judgment_with_a_parseable_verdict(judge: str) -> None:
    status, body = ask(judge, temperature=0)
    assert status == 200, body
    assert body["object"] == "chat.completion"
    assert body["model"] == "demo"
    choices = body["choices"]
    assert isinstance(choices, list)
    assert len(choices) == 1
    assert parse_verdict(choices[0]["message"]["content"]) in ("A", "B"), choices


def test_n_samples_come_back_as_n_choices_with_token_usage(judge: str) -> None:
    status, body = ask(judge, n=3, temperature=0.7, seed=5)
    assert status == 200, body
    choices = body["choices"]
    assert isinstance(choices, list)
    assert [c["index"] for c in choices] == [0, 1, 2]
    assert all(c["message"]["content"] for c in choices)
    usage = body["usage"]
    assert isinstance(usage, dict)
    assert usage["prompt_tokens"] > 0
    assert usage["completion_tokens"] > 0


def test_the_same_seed_gives_the_same_judgment(judge: str) -> None:
    first = ask(judge, temperature=1.0, seed=11)[1]["choices"]
    again = ask(judge, temperature=1.0, seed=11)[1]["choices"]
    assert first == again


@pytest.mark.parametrize(
    ("body", "status", "names"),
    [
        pytest.param({"model": "other"}, 404, "other", id="unknown-model"),
        pytest.param({"n": 0}, 400, "n", id="n-zero"),
        pytest.param({"temperature": 3}, 400, "temperature", id="temperature-too-high"),
        pytest.param({"messages": []}, 400, "messages", id="no-messages"),
        pytest.param({"max_tokens": 100_000}, 400, "context", id="past-the-context"),
    ],
)
def test_a_bad_request_gets_an_openai_error_naming_the_field(
    judge: str, body: dict[str, object], status: int, names: str
) -> None:
    got, answer = ask(judge, **body)
    assert got == status, answer
    error = answer["error"]
    assert isinstance(error, dict)
    assert names in error["message"]


def test_a_body_that_is_not_json_is_a_400(judge: str) -> None:
    status, answer = call("POST", f"{judge}/v1/chat/completions", raw="nope")
    assert status == 400
    assert "not valid JSON" in str(answer)


@pytest.mark.parametrize(
    ("status", "message"),
    [
        pytest.param(None, "no status", id="not-a-run"),
        pytest.param({"phase": "Running", "iteration": 0}, "no evaluated judge yet", id="no-best"),
    ],
)
def test_serve_refuses_a_directory_without_a_judge_in_one_line(
    tmp_path: Path, status: dict[str, object] | None, message: str
) -> None:
    run_dir = write_run(tmp_path / "run", **status) if status else tmp_path
    done = subprocess.run(
        [sys.executable, "-m", "selftaught.cli", "serve", str(run_dir), "--port", "0"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
