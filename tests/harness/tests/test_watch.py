"""Watch streams: resuming from a resourceVersion, bookmarks, 410 Gone, timeouts, selectors."""

from __future__ import annotations

import threading
import time
from typing import Any

from tests.harness.apiserver import ApiServer
from tests.harness.tests.conftest import Http

CMS = "/api/v1/namespaces/default/configmaps"


def cm(name: str, **labels: str) -> dict[str, object]:
    return {"metadata": {"name": name, "labels": labels}}


def types_and_names(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [
        (e["type"], e["object"]["metadata"].get("name")) for e in events if e["type"] != "BOOKMARK"
    ]


def test_watch_from_resource_version_sends_only_later_events(http: Http) -> None:
    http("POST", CMS, cm("before"))
    _, listing = http("GET", CMS)
    rv = listing["metadata"]["resourceVersion"]
    http("POST", CMS, cm("after"))
    http("DELETE", f"{CMS}/before")
    _, events = http("GET", f"{CMS}?watch=true&resourceVersion={rv}&timeoutSeconds=1")
    assert types_and_names(events) == [("ADDED", "after"), ("DELETED", "before")]


def test_watch_without_resource_version_starts_with_current_objects(http: Http) -> None:
    http("POST", CMS, cm("a"))
    _, events = http("GET", f"{CMS}?watch=true&timeoutSeconds=1")
    assert types_and_names(events) == [("ADDED", "a")]


def test_live_events_bookmarks_and_timeout(api: ApiServer, http: Http) -> None:
    later = threading.Timer(0.3, lambda: http("POST", CMS, cm("live", app="x")))
    later.start()
    started = time.monotonic()
    _, events = http(
        "GET",
        f"{CMS}?watch=true&resourceVersion=1&allowWatchBookmarks=true&timeoutSeconds=1"
        "&labelSelector=app%3Dx",
    )
    later.join()
    assert 0.9 < time.monotonic() - started < 3
    assert types_and_names(events)[-1:] == [("ADDED", "live")]
    bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
    assert bookmarks
    assert bookmarks[-1]["object"]["kind"] == "ConfigMap"
    assert int(bookmarks[-1]["object"]["metadata"]["resourceVersion"]) >= int(
        events[-1]["object"]["metadata"]["resourceVersion"]
        if events[-1]["type"] != "BOOKMARK"
        else 0
    )


def test_selector_filters_watch_events(http: Http) -> None:
    http("POST", CMS, cm("x", app="x"))
    http("POST", CMS, cm("y", app="y"))
    _, events = http(
        "GET",
        f"{CMS}?watch=true&resourceVersion=1&timeoutSeconds=1&fieldSelector=metadata.name%3Dy",
    )
    assert types_and_names(events) == [("ADDED", "y")]


def test_too_old_resource_version_gets_410_gone(http: Http) -> None:
    for i in range(60):  # the fixture keeps 50 events of history
        http("POST", CMS, cm(f"c{i}"))
    _, events = http("GET", f"{CMS}?watch=true&resourceVersion=2&timeoutSeconds=1")
    assert len(events) == 1
    assert events[0]["type"] == "ERROR"
    assert events[0]["object"]["code"] == 410
    assert events[0]["object"]["reason"] == "Expired"


def test_close_and_silence_watches(api: ApiServer, http: Http) -> None:
    threading.Timer(0.3, lambda: api.faults.close_watches(r"/configmaps")).start()
    started = time.monotonic()
    http("GET", f"{CMS}?watch=true&resourceVersion=1&timeoutSeconds=10")
    assert time.monotonic() - started < 3
    api.faults.silence_watches(r"/configmaps", seconds=5)
    threading.Timer(0.2, lambda: http("POST", CMS, cm("unseen"))).start()
    _, events = http(
        "GET", f"{CMS}?watch=true&resourceVersion=1&allowWatchBookmarks=true&timeoutSeconds=1"
    )
    assert events == []
