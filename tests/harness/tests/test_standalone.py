"""``python -m tests.harness`` serves until SIGTERM and prints where."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path


def test_standalone_serves_and_stops(tmp_path: Path) -> None:
    argv = [
        sys.executable,
        "-m",
        "tests.harness",
        "--port",
        "0",
        "--kubeconfig",
        str(tmp_path / "kc"),
        "--no-kubelet",
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[3])
    try:
        assert proc.stdout is not None
        match = re.search(r"http://127\.0\.0\.1:\d+", proc.stdout.readline())
        assert match, "no URL printed"
        with urllib.request.urlopen(match.group(0) + "/version", timeout=10) as resp:
            assert json.load(resp)["major"] == "1"
        assert (tmp_path / "kc").read_text().count(match.group(0)) == 1
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0
        if proc.stdout is not None:
            proc.stdout.close()
