"""Fault injection and the bounded request log: the two handles tests hold on the emulator.

Both are used from the test's thread while the emulator serves on its own, so both lock.

Faults (first matching rule wins, rules with a count expire after that many hits)::

    api.faults.fail("PATCH", r"/selftaughtruns/", status=409, times=2)   # next 2 PATCHes: 409
    api.faults.delay("GET", r"/jobs", seconds=0.5)                       # every GET: +0.5 s
    api.faults.close_watches(r"/jobs")                                   # end open job watches now
    api.faults.silence_watches(r"/jobs", seconds=5)                      # watches deliver nothing
    api.faults.lag_watches(r"/selftaughtruns", seconds=0.5)              # events arrive late
    api.faults.clear()

The request log keeps the last ``capacity`` requests (method, path, verb, resource, status) so
tests can count API calls per transition without the server slowing down as it ages.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field


@dataclass
class FaultRule:
    """One injected behaviour for requests whose method and path match."""

    method: str
    pattern: re.Pattern[str]
    status: int | None = None
    delay: float = 0.0
    remaining: int | None = None  # None: forever
    message: str = "injected fault"

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method.upper()) and bool(self.pattern.search(path))


@dataclass
class Silence:
    pattern: re.Pattern[str]
    until: float


@dataclass
class Lag:
    pattern: re.Pattern[str]
    seconds: float


@dataclass
class FaultInjector:
    """Rules consulted by the server before it handles each request."""

    _rules: list[FaultRule] = field(default_factory=list)
    _silences: list[Silence] = field(default_factory=list)
    _lags: list[Lag] = field(default_factory=list)
    _close_generation: int = 0
    _close_patterns: list[tuple[int, re.Pattern[str]]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(
        self,
        method: str,
        path_regex: str,
        *,
        status: int = 500,
        times: int | None = 1,
        message: str = "injected fault",
    ) -> FaultRule:
        """Answer the next ``times`` matching requests (``None``: all) with ``status``."""
        rule = FaultRule(
            method.upper(), re.compile(path_regex), status=status, remaining=times, message=message
        )
        with self._lock:
            self._rules.append(rule)
        return rule

    def delay(
        self, method: str, path_regex: str, *, seconds: float, times: int | None = None
    ) -> FaultRule:
        """Add latency to matching requests before they are handled."""
        rule = FaultRule(method.upper(), re.compile(path_regex), delay=seconds, remaining=times)
        with self._lock:
            self._rules.append(rule)
        return rule

    def close_watches(self, path_regex: str = "") -> None:
        """End every open watch stream whose path matches, as a server restart or LB would."""
        with self._lock:
            self._close_generation += 1
            self._close_patterns.append((self._close_generation, re.compile(path_regex)))
            del self._close_patterns[:-100]

    def silence_watches(self, path_regex: str = "", *, seconds: float = 3600.0) -> None:
        """Matching watch streams stay open but deliver nothing (no events, no bookmarks)."""
        with self._lock:
            self._silences.append(Silence(re.compile(path_regex), time.monotonic() + seconds))

    def lag_watches(self, path_regex: str = "", *, seconds: float) -> None:
        """Matching watch streams deliver each event ``seconds`` late, in order.

        One stream behind another is what a controller sees on a busy API server (or when its
        own event processing falls behind): a Job's DELETED can arrive before its owner's.
        """
        with self._lock:
            self._lags.append(Lag(re.compile(path_regex), seconds))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self._silences.clear()
            self._lags.clear()

    # --- used by the server -------------------------------------------------------------------

    def take(self, method: str, path: str) -> FaultRule | None:
        """The first matching rule (consuming one of its hits), or None."""
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path):
                    if rule.remaining is not None:
                        rule.remaining -= 1
                        if rule.remaining <= 0:
                            self._rules.remove(rule)
                    return rule
        return None

    def close_generation(self) -> int:
        with self._lock:
            return self._close_generation

    def closed_since(self, generation: int, path: str) -> bool:
        """Whether a close_watches() after ``generation`` matched ``path``."""
        with self._lock:
            return any(g > generation and p.search(path) for g, p in self._close_patterns)

    def lag(self, path: str) -> float:
        """Seconds to hold each event of a watch on ``path`` (0: none)."""
        with self._lock:
            return max((lag.seconds for lag in self._lags if lag.pattern.search(path)), default=0.0)

    def silenced(self, path: str) -> bool:
        now = time.monotonic()
        with self._lock:
            self._silences[:] = [s for s in self._silences if s.until > now]
            return any(s.pattern.search(path) for s in self._silences)


@dataclass(frozen=True)
class RequestRecord:
    """One handled request, as tests count them."""

    method: str
    path: str
    verb: str  # get, list, watch, create, update, patch, delete, discovery, ...
    resource: str  # plural ("" for discovery); "jobs/status" for subresources
    namespace: str
    name: str
    status: int
    at: float
    #: The raw query string (``watch=true&labelSelector=...``), as an authorizer reads it.
    query: str = ""
    #: The bearer token the client sent ("" without one): who made the call.
    token: str = ""


class RequestLog:
    """The last ``capacity`` requests; older ones are forgotten so lookups stay O(capacity)."""

    def __init__(self, capacity: int = 10000) -> None:
        self._records: deque[RequestRecord] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self.total = 0

    def add(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)
            self.total += 1

    def records(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def count(
        self,
        *,
        verb: str | None = None,
        resource: str | None = None,
        method: str | None = None,
        name: str | None = None,
        since: float = 0.0,
    ) -> int:
        """How many logged requests match every given criterion (``since``: a time.monotonic())."""
        return sum(
            1
            for r in self.records()
            if (verb is None or r.verb == verb)
            and (resource is None or r.resource == resource)
            and (method is None or r.method == method.upper())
            and (name is None or r.name == name)
            and r.at >= since
        )

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
