"""The one RFC 3339 reader and writer (selftaught.conditions), table-driven."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from selftaught.conditions import parse_time, rfc3339

MOMENT = datetime(2026, 12, 6, 5, 30, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("2026-12-06T05:30:15Z", MOMENT, id="kubernetes-z"),
        pytest.param("2026-12-06T05:30:15+00:00", MOMENT, id="numeric-utc"),
        pytest.param("2026-12-06T07:30:15+02:00", MOMENT, id="other-offset"),
        pytest.param(
            "2026-12-06T05:30:15.250000Z",
            MOMENT + timedelta(milliseconds=250),
            id="fractional-seconds",
        ),
        pytest.param("2026-12-06T05:30:15", MOMENT, id="no-offset-is-utc"),
        pytest.param("", None, id="empty"),
        pytest.param(None, None, id="absent"),
    ],
)
def test_parse_time(text: str | None, expected: datetime | None) -> None:
    parsed = parse_time(text)
    assert parsed == expected
    assert parsed is None or parsed.tzinfo is not None


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01T00:00:00Z", "12:00"])
def test_parse_time_names_what_it_could_not_read(text: str) -> None:
    with pytest.raises(ValueError, match="not an RFC 3339 time"):
        parse_time(text)


def test_rfc3339_round_trips_through_parse_time() -> None:
    local = MOMENT.astimezone(timezone(timedelta(hours=-5)))
    assert rfc3339(local) == "2026-12-06T05:30:15Z"
    assert parse_time(rfc3339(local)) == MOMENT
