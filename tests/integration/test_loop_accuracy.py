"""The self-taught loop improves the built-in tiny judge (minutes on 2 CPU cores).

On each of 3 fixed seeds, 3 iterations of the stages (benchmarks/loop_accuracy.py's settings)
must raise held-out accuracy, and over the seeds the mean gain must be at least 10 points
overall and 15 points on the part of the task the warm start never labelled: the issue's
targets (measured: +13.2 overall, +29.0 unseen; per seed +6.7 / +29.8 / +3.1, so seeds 0 and 2
carry less margin than the mean: docs/tiny-judge.md). 435 s for the three seeds with 1 torch
thread (~2 min of each building the seed model); deterministic on a machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from loop_accuracy import run_loop

SEEDS = (0, 1, 2)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_loop_raises_heldout_accuracy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    torch.set_num_threads(1)
    monkeypatch.setenv("SELFTAUGHT_CACHE", str(tmp_path / "cache"))
    gains, unseen_gains = [], []
    for seed in SEEDS:
        results = run_loop(seed, tmp_path, iterations=3)
        first, last = results[0], results[-1]
        assert last.heldout > first.heldout, f"seed {seed}: {first.heldout} -> {last.heldout}"
        gains.append(last.heldout - first.heldout)
        assert first.unseen is not None
        assert last.unseen is not None
        unseen_gains.append(last.unseen - first.unseen)
    assert sum(gains) / len(SEEDS) >= 0.10, gains
    assert sum(unseen_gains) / len(SEEDS) >= 0.15, unseen_gains
