"""How the quick start degrades when it gets less CPU than the machine has.

Full mode (default): runs ``selftaught run examples/quickstart.yaml`` twice on this machine,
first idle, then with one busy-loop process beside it (started before, stopped after), and
prints both wall times and their ratio. Target: loaded/idle <= 2.2 (one busy core out of two
leaves the run half the CPU; a run that degrades in proportion takes ~2x). Run it on a quiet
machine: the idle number is only idle if nothing else runs.

``--micro``: the policy's own measurement, cheap enough for a shared machine. It times a fixed
number of training steps of the tiny judge (forward, backward, AdamW; one fresh process per
cell, because OpenMP reads its wait policy once, when torch loads it) for every combination of
torch threads (1, 2), OpenMP wait policy (ACTIVE: threads spin while they wait for each other;
PASSIVE: they sleep) and a busy-loop process beside it or not, and prints the load average it
saw. ``--quick``: the micro table's 2-thread cells with 3 steps (the smoke test in
tests/integration/test_benchmarks_smoke.py).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))


def busy_loop() -> None:  # pragma: no cover - runs in its own process
    while True:
        pass


class BusyCore:
    """One process spinning on one core for as long as the ``with`` block lasts."""

    def __enter__(self) -> BusyCore:
        self.process = multiprocessing.get_context("spawn").Process(target=busy_loop, daemon=True)
        self.process.start()
        time.sleep(0.5)  # let it reach the CPU before the measurement starts
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.join(5)


def micro_child(steps: int) -> None:
    """Time ``steps`` training steps of the tiny judge in this process; print JSON."""
    import torch

    from selftaught.tiny import resolve_builtin

    cache = Path(os.environ.get("SELFTAUGHT_CACHE", Path(tempfile.gettempdir()) / "st-cache"))
    model_dir = resolve_builtin("builtin://tiny-judge?seed=0", cache)
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(int(os.environ["BENCH_THREADS"]))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = torch.randint(0, model.config.vocab_size, (16, 64))

    def step() -> None:
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    step()  # warm-up: allocations, first-call dispatch
    started = time.perf_counter()
    for _ in range(steps):
        step()
    print(json.dumps({"seconds": time.perf_counter() - started}))


def micro(steps: int, *, thread_counts: tuple[int, ...] = (1, 2)) -> list[dict[str, Any]]:
    rows = []
    for busy in (False, True):
        for threads in thread_counts:
            for policy in ("ACTIVE", "PASSIVE"):
                env = dict(os.environ, BENCH_THREADS=str(threads), OMP_WAIT_POLICY=policy)
                env["OMP_NUM_THREADS"] = str(threads)
                env.pop("GOMP_SPINCOUNT", None)
                env["PYTHONPATH"] = str(ROOT / "operator")
                load = os.getloadavg()[0]
                argv = [sys.executable, __file__, "--micro-child", str(steps)]
                if busy:
                    with BusyCore():
                        done = subprocess.run(argv, env=env, capture_output=True, text=True)
                else:
                    done = subprocess.run(argv, env=env, capture_output=True, text=True)
                if done.returncode != 0:
                    raise SystemExit(done.stderr[-3000:])
                seconds = json.loads(done.stdout.strip().splitlines()[-1])["seconds"]
                row = {
                    "busy_core": busy,
                    "threads": threads,
                    "wait_policy": policy,
                    "steps": steps,
                    "seconds": round(seconds, 2),
                    "load_1m": round(load, 2),
                }
                print(json.dumps(row), flush=True)
                rows.append(row)
    return rows


#: The behaviour before selftaught.cpu: OpenMP's spin-then-sleep default, threads = the request.
BEFORE = {"SELFTAUGHT_OMP_PASSIVE": "0", "SELFTAUGHT_ADAPTIVE_THREADS": "0"}


def quickstart(workdir: Path, extra: dict[str, str] | None = None) -> float:
    """Wall seconds of one quick start from scratch: its own empty model cache, so the seed's
    build (the warm start, most of the CPU time) is part of it, as for a new user."""
    env = dict(
        os.environ, PYTHONPATH=str(ROOT / "operator"), SELFTAUGHT_CACHE=str(workdir / "cache")
    )
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "selftaught.cli", "run", str(ROOT / "examples" / "quickstart.yaml"),
         "--workdir", str(workdir), "--no-progress"],
        check=True, env=env, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return time.monotonic() - started


def full(*, before: bool = False) -> dict[str, Any]:
    """Idle, then beside one busy core; ``before``: with the pre-fix thread behaviour."""
    extra = BEFORE if before else {}
    with tempfile.TemporaryDirectory(prefix="contention-") as tmp:
        idle = quickstart(Path(tmp) / "idle", extra)
        with BusyCore():
            loaded = quickstart(Path(tmp) / "loaded", extra)
    report = {"idle_s": round(idle, 1), "loaded_s": round(loaded, 1),
              "ratio": round(loaded / idle, 2), "cpus": len(os.sched_getaffinity(0)),
              "behaviour": "before" if before else "after"}  # fmt: skip
    print(json.dumps(report))
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--micro", action="store_true", help="the thread-policy table only")
    parser.add_argument("--steps", type=int, default=30, help="training steps per micro cell")
    parser.add_argument("--quick", action="store_true", help="2-thread micro cells, 3 steps")
    parser.add_argument("--json", type=Path, help="also write the result here")
    parser.add_argument(
        "--before", action="store_true", help="full mode with the behaviour before the fix"
    )
    parser.add_argument("--micro-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.micro_child is not None:
        micro_child(args.micro_child)
        return 0
    if args.quick:  # 2 threads only: the cells where the wait policy matters
        result: Any = micro(3, thread_counts=(2,))
    else:
        result = micro(args.steps) if args.micro else full(before=args.before)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
