"""Run Debian's ``promtool`` (installed by scripts/install-system-deps.sh) on files."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """``promtool <args>``; fails the test (not skips it) when promtool is missing."""
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool not found: run `make system` (scripts/install-system-deps.sh)")
    return subprocess.run(
        [binary, *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def check_rules(path: Path) -> None:
    result = promtool("check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr


def run_rule_tests(path: Path) -> subprocess.CompletedProcess[str]:
    """``promtool test rules``: the result, for the caller to assert on with its output."""
    return promtool("test", "rules", path)
