"""Real Prometheus and Pushgateway servers on 127.0.0.1 for tests (Debian's binaries).

Both run as subprocesses with their state in a temporary directory, are ready when their
``/-/ready`` answers, and stop (SIGTERM, then SIGKILL) when the ``with`` block ends::

    with Pushgateway(tmp) as gateway, Prometheus(tmp, scrape_configs=[...]) as prometheus:
        prometheus.query('up{job="selftaught-operator"}')
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import pytest
import yaml

Sample = dict[str, Any]  # {"metric": {...labels}, "value": [timestamp, "value"]}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found: run `make system` (scripts/install-system-deps.sh)")
    return found


class Server:
    """One server subprocess on 127.0.0.1:<free port>, logging to ``<dir>/<name>.log``."""

    name = "server"

    def __init__(self, directory: Path) -> None:
        self.dir = directory / self.name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = self.dir / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 20.0) -> None:
        with self.log.open("ab") as handle:
            self.process = subprocess.Popen(
                self.argv(), stdout=handle, stderr=subprocess.STDOUT, cwd=self.dir
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited: {self.log.read_text()[-2000:]}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as answer,
            ):
                if answer.status == 200:
                    return
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"{self.name} not ready after {timeout} s: {self.log.read_text()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def get(self, path: str, **params: str) -> Any:
        url = f"{self.url}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as answer:
            return json.loads(answer.read())


class Pushgateway(Server):
    """``prometheus-pushgateway`` without persistence (Debian's default file is under /var)."""

    name = "pushgateway"

    def argv(self) -> list[str]:
        return [
            _binary("prometheus-pushgateway"),
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--persistence.file=",
            "--log.level=warn",
        ]


class Prometheus(Server):
    """``prometheus`` with the given scrape configs and rule files, evaluating every second."""

    name = "prometheus"

    def __init__(
        self,
        directory: Path,
        *,
        scrape_configs: list[dict[str, Any]],
        rule_files: tuple[Path, ...] = (),
        interval: str = "1s",
    ) -> None:
        super().__init__(directory)
        config = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": [str(path) for path in rule_files],
            "scrape_configs": scrape_configs,
        }
        self.config = self.dir / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(config, sort_keys=False))

    def argv(self) -> list[str]:
        return [
            _binary("prometheus"),
            f"--config.file={self.config}",
            f"--storage.tsdb.path={self.dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]

    def query(self, expr: str) -> list[Sample]:
        """An instant query's vector (a scalar result becomes one sample without labels)."""
        try:
            answer = self.get("/api/v1/query", query=expr)
        except urllib.error.HTTPError as error:  # 400 with the parser's message
            raise AssertionError(f"{expr}\n-> {error.read().decode()}") from None
        assert answer["status"] == "success", answer
        data = answer["data"]
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        assert data["resultType"] == "vector", data
        return list(data["result"])

    def wait_for(
        self,
        expr: str,
        predicate: Callable[[list[Sample]], bool] = bool,
        *,
        timeout: float = 20.0,
    ) -> list[Sample]:
        """Poll ``expr`` until ``predicate(result)`` holds; fail with the last result."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if predicate(result):
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"after {timeout} s, {expr}\n-> {result}")
            time.sleep(0.25)


def check_metrics(text: str) -> subprocess.CompletedProcess[str]:
    """``promtool check metrics`` on an exposition text (lint: names, help, types, suffixes)."""
    return subprocess.run(
        [_binary("promtool"), "check", "metrics"],
        input=text, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def values(result: list[Sample]) -> list[float]:
    return [float(sample["value"][1]) for sample in result]


def finite(result: list[Sample]) -> bool:
    """At least one sample, and one of them a number (histogram_quantile of nothing is NaN)."""
    return any(math.isfinite(value) for value in values(result))
