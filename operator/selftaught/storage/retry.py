"""Bounded retries of whole storage operations on transient faults.

botocore retries single HTTP requests; this wrapper retries a whole operation (an upload of a
directory, a listing with pagination) when it fails with :class:`StorageUnavailable`. Both are
bounded, in attempts and in wall-clock time, so that an unreachable endpoint turns into a clear
error (and exit code 3, "transient") within a predictable time instead of a hung pod.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from selftaught.storage.errors import StorageUnavailable

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try before declaring the store unavailable.

    The defaults ride out a restarting MinIO or SeaweedFS pod (tens of seconds) without letting a
    worker hang for minutes on a wrong endpoint; tests pass a tiny policy.
    """

    #: Attempts of one whole operation (1 = no retry). Five attempts with the delays below span
    #: about 15 s of waiting.
    attempts: int = 5
    #: Delay before the first retry, seconds; doubled after each failure (exponential backoff).
    base_delay: float = 1.0
    #: Cap on one delay, seconds.
    max_delay: float = 8.0
    #: Give up once this many seconds have passed since the first attempt, whatever remains.
    deadline: float = 60.0
    #: Attempts of one HTTP request inside botocore (its "standard" retry mode), per operation
    #: attempt. Connection refusals count as retryable there too.
    client_attempts: int = 3
    #: Socket connect and read timeouts of the S3 client, seconds.
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    #: The clock and the sleeper, injectable so unit tests do not wait.
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.client_attempts < 1:
            raise ValueError("attempts and client_attempts must be >= 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.deadline <= 0:
            raise ValueError("delays must be >= 0 and the deadline > 0")

    def delay(self, failures: int) -> float:
        """Backoff before retry number ``failures`` (1-based), with +-25 % jitter."""
        raw = min(self.max_delay, self.base_delay * (2 ** (failures - 1)))
        return float(raw * random.uniform(0.75, 1.25))


#: No retries at all, for tests that assert the first error.
NO_RETRY = RetryPolicy(attempts=1, client_attempts=1, base_delay=0.0, max_delay=0.0)


def call_with_retry(operation: Callable[[], T], policy: RetryPolicy, what: str) -> T:
    """Run ``operation``; on :class:`StorageUnavailable` retry with backoff within the policy.

    Any other exception propagates at once: a wrong credential or a missing bucket does not heal
    by waiting. The final error says how many attempts were made and over how long.
    """
    start = policy.clock()
    failures = 0
    while True:
        try:
            return operation()
        except StorageUnavailable as error:
            failures += 1
            elapsed = policy.clock() - start
            pause = policy.delay(failures)
            if failures >= policy.attempts or elapsed + pause > policy.deadline:
                raise StorageUnavailable(
                    f"{error} (gave up on {what} after {failures} attempt(s) in {elapsed:.1f} s)",
                    uri=error.uri,
                ) from error
            policy.sleep(pause)
