"""Thread count and OpenMP wait policy of stage processes (selftaught.cpu)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from selftaught import cpu


@pytest.mark.parametrize(
    ("requested", "usable", "idle", "expected"),
    [
        pytest.param(2, 2, 2.0, 2, id="idle-machine-gets-the-request"),
        pytest.param(2, 2, 1.0, 1, id="one-busy-core-leaves-one-thread"),
        pytest.param(2, 2, 1.6, 2, id="idle-rounds-half-up"),
        pytest.param(2, 2, 0.1, 1, id="never-below-one"),
        pytest.param(8, 2, None, 2, id="capped-by-the-affinity-mask"),
        pytest.param(1, 16, 16.0, 1, id="never-above-the-request"),
        pytest.param(0, 4, None, 1, id="a-zero-request-is-one"),
    ],
)
def test_threads_for_caps_the_request_by_usable_and_idle_cpus(
    requested: int, usable: int, idle: float | None, expected: int
) -> None:
    assert cpu.threads_for(requested, usable=usable, idle=idle) == expected


def test_omp_env_adds_a_passive_wait_policy_but_keeps_what_the_user_set() -> None:
    assert cpu.omp_env({})["OMP_WAIT_POLICY"] == "PASSIVE"
    assert cpu.omp_env({})["GOMP_SPINCOUNT"] == "0"
    assert "OMP_WAIT_POLICY" not in cpu.omp_env({"OMP_WAIT_POLICY": "ACTIVE"})
    assert cpu.omp_env({cpu.PASSIVE_ENV: "0"}) == {}  # OpenMP's own defaults


def test_usable_cpus_is_the_affinity_mask() -> None:
    assert cpu.usable_cpus() == len(os.sched_getaffinity(0))


def test_idle_cpus_is_between_zero_and_the_cpu_count() -> None:
    idle = cpu.idle_cpus(seconds=0.05)
    assert idle is not None
    assert 0.0 <= idle <= (os.cpu_count() or 1) + 1e-6


def test_idle_cpus_without_proc_is_unknown(tmp_path: Path) -> None:
    assert cpu.idle_cpus(seconds=0.0, stat=tmp_path / "missing") is None


def test_adaptive_threads_can_be_switched_off() -> None:
    assert cpu.choose_threads(64, {cpu.ADAPTIVE_ENV: "0"}) == cpu.usable_cpus()
