"""Local stage processes forked from the warm server behave like fresh ``selftaught worker``s."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from selftaught.local import forkserver
from selftaught.phases import EXIT_BAD_INPUT
from selftaught.pod import TASK_ENV, TERMINATION_LOG_ENV

pytestmark = pytest.mark.skipif(not forkserver.enabled(), reason="fork server is Linux-only")


def test_a_forked_worker_gets_its_own_environment_log_and_exit_code(tmp_path: Path) -> None:
    summary, log = tmp_path / "summary.json", tmp_path / "shard.log"
    env = {**os.environ, TERMINATION_LOG_ENV: str(summary)}
    env.pop(TASK_ENV, None)
    process = forkserver.ForkedProcess(["worker", "select"], env, log)
    assert process.wait(timeout=120) == EXIT_BAD_INPUT
    assert process.poll() == process.returncode == EXIT_BAD_INPUT
    assert json.loads(summary.read_text())["errorType"] == "BadInput"
    assert "SELFTAUGHT_TASK is missing" in log.read_text()  # stderr went to the shard's log

    # The next fork sees its own environment, not the previous child's or the server's.
    env[TASK_ENV] = "{not json"
    second = forkserver.ForkedProcess(["worker", "select"], env, tmp_path / "second.log")
    assert second.wait(timeout=120) == EXIT_BAD_INPUT
    assert "SELFTAUGHT_TASK" in (tmp_path / "second.log").read_text()
    assert "is missing" not in (tmp_path / "second.log").read_text()


def test_the_server_builds_what_every_model_load_would_build_first() -> None:
    """The preload leaves transformers' checkpoint renaming table built, for every fork to share.

    It is an internal of transformers: when an upgrade moves it, this fails, instead of every
    stage silently paying its first-load cost again.
    """
    check = (
        "import gc, selftaught.local.preload\n"
        "from transformers import conversion_mapping\n"
        "assert conversion_mapping._checkpoint_conversion_mapping_cache, 'table not built'\n"
        "assert gc.get_freeze_count() > 100_000, gc.get_freeze_count()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
