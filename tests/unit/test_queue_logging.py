"""A failing reconcile is one log line per retry, not a traceback per retry (issue 16).

The first failure of a run that is not an API answer keeps its traceback (a bug needs it);
every later retry, and every API error (its status and message are the whole story), is one
warning line naming the run, the error and the backoff.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from selftaught.controller.kube import ApiError
from selftaught.controller.queue import Key, WorkQueue


async def fail_three_times(error: Exception) -> list[float]:
    calls: list[float] = []
    done = asyncio.Event()

    async def reconcile(key: Key, fresh: bool, routine: bool) -> float | None:
        calls.append(asyncio.get_running_loop().time())
        if len(calls) <= 3:
            raise error
        done.set()
        return None

    queue = WorkQueue(reconcile, workers=1, error_backoff=(0.01,))
    queue.start()
    queue.add(("ns", "demo"))
    await asyncio.wait_for(done.wait(), timeout=5)
    await queue.stop()
    return calls


@pytest.mark.parametrize(
    ("error", "tracebacks"),
    [
        pytest.param(RuntimeError("boom"), 1, id="bug-traceback-once"),
        pytest.param(ApiError(403, "Forbidden", "quota exceeded"), 0, id="api-error-no-traceback"),
    ],
)
def test_each_retry_is_one_line(
    error: Exception, tracebacks: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="selftaught.controller.queue"):
        calls = asyncio.run(fail_three_times(error))
    assert len(calls) == 4
    lines = [r for r in caplog.records if r.name == "selftaught.controller.queue"]
    assert len(lines) == 3
    assert all("reconcile of ns/demo failed" in r.getMessage() for r in lines)
    assert all(str(error) in r.getMessage() for r in lines)
    assert sum(1 for r in lines if r.exc_info) == tracebacks
