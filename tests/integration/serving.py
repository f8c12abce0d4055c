"""Start ``selftaught serve`` as a person does (a subprocess) and talk to it over HTTP."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import yaml

ADDRESS = re.compile(r"your judge is at (http://127\.0\.0\.1:\d+)")


#: The suite's tiny judge (tests/conftest.py's model cache builds it once).
SEED = "builtin://tiny-judge?seed=0"


def write_run(run_dir: Path, **status: object) -> Path:
    """A run directory as ``selftaught run`` leaves it: ``status.yaml`` in the CR's schema."""
    run_dir.mkdir(parents=True)
    (run_dir / "status.yaml").write_text(yaml.safe_dump({"name": run_dir.name, "status": status}))
    return run_dir


def seed_run(run_dir: Path) -> Path:
    """A finished run whose best judge is the seed (iteration 0): servable without training."""
    return write_run(
        run_dir, phase="Succeeded", history=[{"iteration": 0, "model": SEED}],
        bestIteration=0, bestAccuracy=0.69, bestModel=SEED,
    )  # fmt: skip


@contextmanager
def served(run_dir: Path, *, timeout: float = 300.0) -> Iterator[str]:
    """The base URL of ``selftaught serve RUN_DIR --port 0``; the server is stopped after."""
    process = subprocess.Popen(
        [sys.executable, "-m", "selftaught.cli", "serve", str(run_dir), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                raise AssertionError(f"serve exited ({process.wait()}): {''.join(seen)}")
            seen.append(line)
            if found := ADDRESS.search(line):
                yield found.group(1)
                return
        raise AssertionError(f"serve printed no address in {timeout} s: {''.join(seen)}")
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def call(method: str, url: str, body: Any = None, *, raw: str | None = None) -> tuple[int, Any]:
    """One request with aiohttp's client: (status, decoded JSON body)."""

    async def go() -> tuple[int, Any]:
        async with aiohttp.ClientSession() as session:
            data = raw if raw is not None else None
            async with session.request(method, url, json=body, data=data) as response:
                return response.status, await response.json()

    return asyncio.run(go())
