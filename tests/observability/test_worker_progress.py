"""Worker progress reaches a real Pushgateway while a stage runs, and is gone when it ends."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from selftaught import progress
from tests.observability.prometheus import Pushgateway


def gateway_text(gateway: Pushgateway) -> str:
    with urllib.request.urlopen(f"{gateway.url}/metrics", timeout=10) as answer:
        return answer.read().decode()


def test_progress_is_pushed_per_shard_and_removed_when_the_stage_ends(tmp_path: Path) -> None:
    with Pushgateway(tmp_path) as gateway:
        environ = {progress.PUSHGATEWAY_ENV: gateway.url}
        reporter = progress.reporter("judge", 3, namespace="ml", run="demo", environ=environ)
        reporter.start(10)
        reporter.advance(4, tokens=400)
        reporter.publish(force=True)
        text = gateway_text(gateway)
        done = [
            line
            for line in text.splitlines()
            if line.startswith("selftaught_worker_items_done{")
            and 'run="demo"' in line
            and 'shard="3"' in line
        ]
        assert len(done) == 1
        assert done[0].endswith(" 4")
        reporter.close()
        assert 'run="demo"' not in gateway_text(gateway)


def test_an_unreachable_gateway_never_fails_a_stage() -> None:
    reporter = progress.reporter(
        "judge", environ={progress.PUSHGATEWAY_ENV: "http://127.0.0.1:9"}, run="demo"
    )
    reporter.start(2)
    reporter.advance(2)
    reporter.close()
    assert reporter.pushgateway is None  # gave up after the first failure
