"""How many concurrent SelfTaughtRuns one operator carries, and how fast it hands off stages.

Runs the real ``selftaught operator`` (a subprocess, as in production) against the test
harness's Kubernetes API emulator, whose kubelet finishes every Job instantly with a realistic
termination message, so the operator is the only thing being measured. All times come from the
emulator's request log (server-side), so client-side scheduling noise does not count:

* CR applied -> first Job created: the run's ``create`` to its first Job ``create``;
* hand-off: the kubelet's last ``jobs/status`` write for a run's Job (the write that marks it
  Complete) to the ``create`` of that run's next Job;
* API requests per stage transition: the operator's own requests (reads: get/list; writes:
  create/patch/update/delete; watches excluded) divided by the transitions it made (each Job
  created starts a stage; each run's completion ends one);
* operator RSS (peak) and CPU (user+system seconds over the wall time), with psutil.

Two shapes of load:

* *burst* (default): every run is created at once and every stage ends the moment it starts.
  The system is saturated from start to end, so this measures throughput (transitions per
  second); latency is then the queue in front of it (Little's law: runs in flight divided by
  throughput), whatever the operator does.
* *paced* (``--stage-seconds S --create-rate R``): runs are created at R per second and each
  stage runs for about S seconds (0.6-1.6 S by stage), as real stages do (minutes to hours).
  This is the question a platform team asks: with this many runs alive, how fast does the
  operator react when a stage ends?

    python benchmarks/operator_scale.py --runs 100                             # burst
    python benchmarks/operator_scale.py --runs 1000 --stage-seconds 20 --create-rate 20
    python benchmarks/operator_scale.py --quick                # 10 runs, a smoke test

Targets (issue "Benchmarks"): 1,000 runs on 2 cores, p99 hand-off < 1 s, RSS < 300 MB, at most
3 writes per transition.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.harness.apiserver import ApiServer  # noqa: E402
from tests.harness.cluster import Cluster  # noqa: E402
from tests.harness.faults import RequestRecord  # noqa: E402
from tests.harness.kubelet import PodFault  # noqa: E402

CRD = ROOT / "crds" / "selftaughtrun.yaml"
STAGES = ("select", "pairs", "judge", "train", "evaluate")
#: Realistic worker summaries, so the planner does its full bookkeeping on each transition.
SUMMARIES: dict[str, dict[str, Any]] = {
    "select": {"instructions": 1000, "heldout": 50, "badLines": 0, "read": 1100},
    "pairs": {"pairs": 950, "heldoutPairs": 48, "failed": 2},
    "judge": {"pairs": 950, "sampled": 3800, "kept": 700, "invalid": 12},
    "train": {"loss": 0.41, "examples": 700, "steps": 44, "model": "file:///m"},
    "evaluate": {
        "scores": {
            "heldout": {"accuracy": 0.81, "examples": 48, "positionConsistency": 0.9},
            "rewardbench": {"accuracy": 0.77, "examples": 2985, "sections": {"Chat": 0.9}},
        }
    },
}
#: How long each stage "runs" in paced mode, relative to --stage-seconds (judging and training
#: are the long ones, as in real runs).
STAGE_WEIGHTS = {"select": 0.6, "pairs": 1.0, "judge": 1.4, "train": 1.6, "evaluate": 0.4}
#: Operator requests, by verb, that count as reads and writes (watches are streams, not counted).
READS, WRITES = {"get", "list"}, {"create", "patch", "update", "delete"}
#: Resources only the kubelet writes; everything else the operator's.
KUBELET_ONLY = {"jobs/status", "pods/status"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def manifest(name: str) -> dict[str, Any]:
    stage = {"engine": "transformers", "gpus": 0, "cpu": "1", "memory": "1Gi"}
    return {
        "apiVersion": "selftaught.dev/v1alpha1",
        "kind": "SelfTaughtRun",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "seedModel": "builtin://tiny-judge",
            "storage": {"uri": "file:///artifacts"},
            "instructions": {"source": "builtin://arithmetic", "categories": ["math"]},
            "iterations": 1,
            "evaluation": {"datasets": [{"name": "rewardbench", "uri": "file:///rb.jsonl"}]},
            "stages": {s: dict(stage) for s in STAGES},
        },
    }


@dataclass
class Result:
    runs: int
    wall_seconds: float
    first_job: list[float]
    handoff: list[float]
    reads_per_transition: float
    writes_per_transition: float
    peak_rss_mb: float
    cpu_seconds: float
    transitions: int
    #: (hand-off seconds, run, Complete written at, next Job created at), monotonic clock.
    handoffs: list[tuple[float, str, float, float]]

    def row(self) -> dict[str, Any]:
        def ms(values: list[float], q: float) -> float:
            ordered = sorted(values)
            return round(1000 * ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 1)

        return {
            "runs": self.runs,
            "wall_s": round(self.wall_seconds, 1),
            "transitions_per_s": round(self.transitions / self.wall_seconds, 1),
            "first_job_p50_ms": round(1000 * statistics.median(self.first_job), 1),
            "first_job_p99_ms": ms(self.first_job, 0.99),
            "handoff_p50_ms": round(1000 * statistics.median(self.handoff), 1),
            "handoff_p99_ms": ms(self.handoff, 0.99),
            "reads_per_transition": round(self.reads_per_transition, 2),
            "writes_per_transition": round(self.writes_per_transition, 2),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "cpu_s": round(self.cpu_seconds, 1),
            "cpu_share": round(self.cpu_seconds / self.wall_seconds, 2),
        }


class Freezer(threading.Thread):
    """Moves the harness's long-lived objects out of its garbage collector, every second.

    The emulator is a Python stand-in for the API server and keeps everything in memory (50,000
    watch events, a 140,000-entry request log, every object): its full collections grew to 1.5 s
    stop-the-world pauses during a paced 1,000-run load (``--trace`` logs them), and every
    request and watch event waited them out. A real API server has no such pauses; the
    operator's own collections stay in the measurement. Frozen objects are still freed when
    their reference count drops; only cyclic garbage frozen here outlives the benchmark run.
    """

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(1.0):
            gc.freeze()


class Sampler(threading.Thread):
    """Samples the operator's RSS every 0.2 s (peak) until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        import psutil

        self.process = psutil.Process(pid)
        self.peak = 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.2):
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except Exception:  # the process ended
                return

    def cpu(self) -> float:
        times = self.process.cpu_times()
        return float(times.user + times.system)


def run_of(record: RequestRecord) -> str:
    """The run a Job belongs to, from the Job name ``<run>-i<i>-<stage>-a<attempt>``."""
    return record.name.rsplit("-", 3)[0]


def measure(
    runs: int,
    *,
    timeout: float,
    workers: int,
    stage_seconds: float = 0.0,
    create_rate: float | None = None,
    trace: Path | None = None,
) -> Result:
    timer = CollectionTimer()
    if trace:
        gc.callbacks.append(timer)
    cluster = Cluster(max_pods=64)
    cluster.api = ApiServer(history=50_000, request_log=120 * runs + 20_000)
    with cluster:
        assert cluster.kubelet is not None
        for stage, summary in SUMMARIES.items():
            cluster.kubelet.inject(
                PodFault.INSTANT,
                labels={"selftaught.dev/stage": stage},
                message=json.dumps(summary),
                delay=stage_seconds * STAGE_WEIGHTS[stage],
            )
        cluster.kubectl("apply", "-f", str(CRD), check=True)
        cluster.kubectl(
            "wait", "--for=condition=Established", "crd/selftaughtruns.selftaught.dev",
            "--timeout=20s", check=True,
        )  # fmt: skip
        liveness = f"http://127.0.0.1:{free_port()}/healthz"
        log = open(cluster.dir / "operator.log", "wb")  # noqa: SIM115 - closed below
        # --trace: the controller's own debug log (kopf's stays at INFO: -v would flood it).
        entry = (
            [sys.executable, "-c", TRACED] if trace else [sys.executable, "-m", "selftaught.cli"]
        )
        operator = subprocess.Popen(
            [
                *entry, "operator", "--namespace", "default",
                "--metrics-port", str(free_port()), "--metrics-address", "127.0.0.1",
                "--liveness", liveness, "--workers", str(workers), "--resync-seconds", "60",
            ],
            env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)},
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        freezer = Freezer()
        try:
            wait_live(liveness, operator)
            freezer.start()
            sampler = Sampler(operator.pid)
            sampler.start()
            cpu_before = sampler.cpu()
            since = len(cluster.requests.records())
            started = time.monotonic()
            from kubernetes import client, config

            config.load_kube_config(str(cluster.kubeconfig))
            api = client.CustomObjectsApi()
            for index in range(runs):
                if create_rate:  # paced: the index-th run is due at index / rate seconds
                    time.sleep(max(0.0, started + index / create_rate - time.monotonic()))
                api.create_namespaced_custom_object(
                    "selftaught.dev", "v1alpha1", "default", "selftaughtruns",
                    manifest(f"scale-{index:04d}"),
                )  # fmt: skip
            wait_all(cluster, runs, deadline=started + timeout)
            wall = time.monotonic() - started
            cpu = sampler.cpu() - cpu_before
            sampler.halt.set()
            records = cluster.requests.records()[since:]
        finally:
            freezer.halt.set()
            gc.unfreeze()
            operator.terminate()
            operator.wait(timeout=30)
            log.close()
        result = analyse(records, runs, wall, sampler.peak / 2**20, cpu)
        if trace:
            gc.callbacks.remove(timer)
            write_trace(trace, result, records, cluster.dir / "operator.log")
            (trace / "harness-gc.txt").write_text(
                "".join(
                    f"{time.strftime('%H:%M:%S', time.localtime(at))}.{int(at % 1 * 1000):03d} "
                    f"gen {generation} collection took {1000 * took:.0f} ms\n"
                    for at, generation, took in timer.long
                )
            )
    return result


#: The operator's entry point with the ``selftaught`` loggers at DEBUG and timestamps (to the
#: millisecond, wall clock) on every line, to line them up with the request log.
TRACED = """
import logging, sys
import kopf
logging.getLogger("selftaught").setLevel(logging.DEBUG)
configure = kopf.configure
def stamped(**options):
    configure(**options)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s.%(msecs)03d %(message)s", "%H:%M:%S"))
kopf.configure = stamped
from gc import callbacks
from time import perf_counter
collecting = []
def timed(phase, info):
    if phase == "start":
        collecting[:] = [perf_counter()]
    elif collecting and (took := perf_counter() - collecting[0]) > 0.05:
        logging.getLogger("selftaught.gc").info(
            "gen %d collection took %.0f ms", info["generation"], 1000 * took
        )
callbacks.append(timed)
from selftaught.cli import main
sys.exit(main(sys.argv[1:]))
"""


class CollectionTimer:
    """Garbage collections longer than 50 ms in this (the harness's) process, for ``--trace``."""

    def __init__(self) -> None:
        self.started = 0.0
        self.long: list[tuple[float, int, float]] = []  # (wall clock, generation, seconds)

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
        elif (took := time.perf_counter() - self.started) > 0.05:
            self.long.append((time.time(), info["generation"], took))


def write_trace(
    directory: Path, result: Result, records: list[RequestRecord], operator_log: Path, top: int = 20
) -> None:
    """The slowest hand-offs with every request about their run, and the operator's log.

    Request times are shown as wall-clock times, so they line up with the log's timestamps.
    """
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(operator_log, directory / "operator.log")
    offset = time.time() - time.monotonic()
    lines = []
    for seconds, run, complete, create in sorted(result.handoffs, reverse=True)[:top]:
        lines.append(f"== {run}: hand-off {seconds:.3f} s")
        for record in records:
            if complete - 2.0 <= record.at <= create + 0.5 and run in record.name + record.query:
                stamp = time.strftime("%H:%M:%S", time.localtime(record.at + offset))
                millis = int((record.at + offset) % 1 * 1000)
                lines.append(
                    f"  {stamp}.{millis:03d} {record.verb:8} {record.resource:16} {record.name}"
                    f" {record.status}"
                )
    (directory / "slowest.txt").write_text("\n".join(lines) + "\n")


def wait_live(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"operator exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("operator not live after 60 s")


def wait_all(cluster: Cluster, runs: int, *, deadline: float) -> None:
    """Wait until every run Succeeded, reading the emulator's store in-process: polling its
    HTTP API for 1,000 runs' statuses would load the very server whose latency is measured."""
    assert cluster.api is not None
    assert cluster.api.store is not None
    objects = cluster.api.store.objects
    done = 0
    while time.monotonic() < deadline:
        try:
            items = list(objects.items())
        except RuntimeError:  # the emulator's thread added an object meanwhile: look again
            continue
        done = sum(
            1
            for (group, plural, _, _), obj in items
            if (group, plural) == ("selftaught.dev", "selftaughtruns")
            and (obj.get("status") or {}).get("phase") == "Succeeded"
        )
        if done == runs:
            return
        time.sleep(1.0)
    raise TimeoutError(f"not every run succeeded before the deadline ({done}/{runs})")


def analyse(
    records: list[RequestRecord], runs: int, wall: float, rss_mb: float, cpu: float
) -> Result:
    created: dict[str, float] = {}
    job_creates: dict[str, list[RequestRecord]] = defaultdict(list)
    status_writes: dict[str, list[float]] = defaultdict(list)
    reads = writes = 0
    for record in records:
        if record.resource == "selftaughtruns" and record.verb == "create":
            created[record.name] = record.at
        elif record.resource == "jobs" and record.verb == "create" and record.status < 300:
            job_creates[run_of(record)].append(record)
        elif record.resource == "jobs/status" and record.verb in ("patch", "update"):
            status_writes[run_of(record)].append(record.at)
        if record.resource in KUBELET_ONLY or (
            record.resource == "pods" and record.verb not in READS
        ):
            continue
        if record.resource == "selftaughtruns" and record.verb == "create":
            continue  # the benchmark's own requests
        if record.verb in READS:
            reads += 1
        elif record.verb in WRITES:
            writes += 1
    first_job, handoff = [], []
    handoffs: list[tuple[float, str, float, float]] = []
    for run, creates in job_creates.items():
        first_job.append(creates[0].at - created[run])
        for create in creates[1:]:
            before = [t for t in status_writes[run] if t < create.at]
            handoff.append(create.at - before[-1])
            handoffs.append((create.at - before[-1], run, before[-1], create.at))
    # Every Job creation is a transition (a stage starts), and so is each run's completion.
    transitions = sum(len(c) for c in job_creates.values()) + runs
    return Result(
        runs=runs,
        wall_seconds=wall,
        first_job=first_job,
        handoff=handoff,
        reads_per_transition=reads / transitions,
        writes_per_transition=writes / transitions,
        peak_rss_mb=rss_mb,
        cpu_seconds=cpu,
        transitions=transitions,
        handoffs=handoffs,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--repeats", type=int, default=1, help="medians over repeats")
    parser.add_argument("--workers", type=int, default=4, help="operator reconcile workers")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument(
        "--stage-seconds", type=float, default=0.0, help="paced: a stage runs ~this long"
    )
    parser.add_argument(
        "--create-rate", type=float, default=None, help="paced: runs created per second"
    )
    parser.add_argument("--quick", action="store_true", help="10 runs once (smoke test)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument(
        "--trace", type=Path, help="write the slowest hand-offs and the controller's debug log here"
    )
    args = parser.parse_args(argv)
    sizes = [10] if args.quick else args.runs
    rows = []
    for runs in sizes:
        results = [
            measure(
                runs,
                timeout=args.timeout,
                workers=args.workers,
                stage_seconds=args.stage_seconds,
                create_rate=args.create_rate,
                trace=args.trace,
            ).row()
            for _ in range(1 if args.quick else args.repeats)
        ]
        row = {k: statistics.median([r[k] for r in results]) for k in results[0]}
        row.update(stage_seconds=args.stage_seconds, create_rate=args.create_rate)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
