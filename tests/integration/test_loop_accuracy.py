"""The self-taught loop improves the built-in tiny judge (minutes on 2 CPU cores)."""

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
    assert sum(unseen_gains) / len(SEEDS) >= 0.15
    assert sum(gains) / len(SEEDS) >= 0.05
