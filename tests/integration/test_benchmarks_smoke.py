"""Every benchmark script runs in its --quick mode (a smoke test: no timing assertions).

The measured tables live in the README and docs/benchmarks.md; this only proves the scripts
still work, so the numbers can be reproduced.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def run(script: str, tmp_path: Path, *extra: str) -> list[dict[str, object]]:
    out = tmp_path / f"{script}.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / f"{script}.py"), "--quick", "--json", str(out),
         *extra],
        capture_output=True, text=True, timeout=900, check=False, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    data = json.loads(out.read_text())
    return data if isinstance(data, list) else [data]


def test_operator_scale_quick(tmp_path: Path) -> None:
    (row,) = run("operator_scale", tmp_path)
    assert row["runs"] == 10
    assert row["writes_per_transition"] > 0
    assert row["handoff_p50_ms"] > 0


def test_judging_throughput_quick(tmp_path: Path) -> None:
    rows = run("judging_throughput", tmp_path)
    modes = {r.get("mode") for r in rows}
    assert {"batched", "naive"} <= modes
    assert any("speedup" in r for r in rows)


def test_adaptive_judging_quick(tmp_path: Path) -> None:
    fixed, adaptive = run("adaptive_judging", tmp_path)
    assert (fixed["mode"], adaptive["mode"]) == ("fixed", "adaptive k=1")
    assert fixed["drawn"] == 16 * 4  # --quick: 16 pairs, N = 4, one call
    assert adaptive["drawn"] <= fixed["drawn"]  # never more than the budget
    assert 0 <= adaptive["mcnemar_p"] <= 1  # type: ignore[operator]


def test_cap_tradeoff_prices_giving_up_on_hard_pairs() -> None:
    """A judge always right loses nothing to any cap; one right 1 draw in 15 loses most."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from adaptive_judging import cap_tradeoff

    sure = cap_tradeoff([15] * 10, 15)
    assert sure[0] == {"cap": 1, "saving": 15.0, "expected_kept": 10.0, "expected_lost": 0.0,
                       "mcnemar_p_if_lost": 1.0}  # fmt: skip
    hard = cap_tradeoff([1] * 100, 15)
    assert hard[-1]["expected_lost"] == 0.0  # the cap at N is fixed sampling
    assert hard[2]["expected_lost"] > 40  # 3 draws: ~19 kept of ~64
    assert hard[2]["mcnemar_p_if_lost"] < 1e-6


def test_pipeline_overhead_quick(tmp_path: Path) -> None:
    (report,) = run("pipeline_overhead", tmp_path, "--workdir", str(tmp_path / "work"))
    stages = {row["stage"] for row in report["stages"]}  # type: ignore[union-attr, index]
    assert stages == {"select", "pairs", "evaluate", "judge", "train"}
    assert 0 < report["total"]["compute_s"] < report["total"]["total_wall_s"]  # type: ignore[index]
    for row in report["stages"]:  # type: ignore[union-attr]
        # wall = launch + setup + compute, each part measured, none negative
        assert row["launch_s"] >= 0  # type: ignore[index]
        assert row["setup_s"] >= 0  # type: ignore[index]
        parts = row["launch_s"] + row["setup_s"] + row["compute_s"]  # type: ignore[index]
        assert abs(parts - row["wall_s"]) <= 0.02  # type: ignore[index]


def test_gpu_check_quick_on_cpu(tmp_path: Path) -> None:
    """The GPU check's code path (the train stage's trainer, FSDP on one rank, fp32 master
    weights; the transformers engine judging) on a tiny model, in seconds."""
    (report,) = run("gpu_check", tmp_path, "--device", "cpu")
    training, judging = report["training"], report["judging"]
    assert training["sharded"] is True  # type: ignore[index]
    assert training["master_dtype"] == "torch.float32"  # type: ignore[index]
    assert training["tokens_per_s"] > 0  # type: ignore[index]
    assert training["mfu"] is None  # type: ignore[index]  # no peak for a CPU
    assert judging["judgments_per_s"] > 0  # type: ignore[index]


def test_quickstart_contention_quick(tmp_path: Path) -> None:
    rows = run("quickstart_contention", tmp_path)
    cells = {(r["busy_core"], r["wait_policy"]) for r in rows}
    assert cells == {(b, p) for b in (False, True) for p in ("ACTIVE", "PASSIVE")}
    assert all(r["threads"] == 2 and r["seconds"] > 0 for r in rows)  # type: ignore[operator]
