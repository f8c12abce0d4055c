"""``selftaught``: the command line. Heavy libraries are imported inside each command."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


def _crd(args: argparse.Namespace) -> int:
    from selftaught.crd import render_yaml

    text = render_yaml()
    if args.output:
        with open(args.output, "w") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    return 0


def _worker(args: argparse.Namespace) -> int:
    if args.distributed:
        if args.stage != "train":
            print("selftaught worker: --distributed is for the train stage only", file=sys.stderr)
            return 2
        from selftaught.launch import launch

        return launch()
    from selftaught.worker import main

    return int(main(args.stage))


def _console() -> Console:
    """Rich's console; 140 columns in logs, where it would otherwise wrap tables at 80."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=140)


def _run(args: argparse.Namespace) -> int:
    from selftaught.local import forkserver

    if args.manifest.is_file():  # a typo in the path needs no stage processes
        forkserver.start()
    from selftaught.local import LocalRunner, RunInterrupted
    from selftaught.local.display import Display
    from selftaught.local.runner import RunBusy
    from selftaught.manifests import ManifestError

    console = _console()
    live = False if args.no_progress else None
    try:
        runner = LocalRunner(
            args.manifest, args.workdir, display=Display(console, live=live), parallel=args.parallel
        )
        status = runner.run()
    except ManifestError as error:
        console.print(f"[red]{error}[/red]", highlight=False)
        return 2
    except RunBusy as error:
        console.print(f"[red]{error}[/red]")
        return 3
    except RunInterrupted as error:
        console.print(f"[yellow]{error}[/yellow]")
        return 130
    console.print(f"status: {runner.directory.status_path}")
    return 0 if status.phase == "Succeeded" else 1


def _status(args: argparse.Namespace) -> int:
    import yaml

    from selftaught.local.display import iterations_table
    from selftaught.local.state import RunDirectory
    from selftaught.status_view import StatusError, is_local, read_cluster_run, summary_lines

    console = _console()
    path = Path(args.run)
    if is_local(path):
        directory = RunDirectory(path)
        try:
            status = directory.load_status()
        except (ValueError, yaml.YAMLError) as error:  # pydantic's ValidationError is a ValueError
            console.print(f"[red]{directory.status_path}: unreadable: {error}[/red]", markup=True)
            return 2
        assert status is not None  # is_local() saw the file
        alive: bool | None = directory.runner_alive()
        where = str(directory.status_path)
    elif "/" in args.run or path.exists():
        console.print(f"[red]{path}: no status.yaml (not a selftaught run directory?)[/red]")
        return 2
    else:
        try:
            found = read_cluster_run(args.run, namespace=args.namespace, kubeconfig=args.kubeconfig)
        except StatusError as error:
            console.print(f"[red]{error}[/red]", highlight=False)
            return 2
        status, alive = found.status, None
        where = f"selftaughtrun {args.run} in namespace {found.namespace} ({found.context})"
    console.print(where, highlight=False)
    console.print(iterations_table(status))
    for line in summary_lines(status, runner_alive=alive):
        console.print(line, highlight=False, markup=False)
    if alive is not None and RunDirectory(path).plot_path.exists():
        console.print(f"accuracy plot: {RunDirectory(path).plot_path}")
    return 0


def _tiny_model(args: argparse.Namespace) -> int:
    from selftaught.tiny import build_tiny_model

    path = build_tiny_model(args.directory, seed=args.seed, warm_start=not args.no_warm_start)
    print(path)
    return 0


def _operator(args: argparse.Namespace) -> int:
    from selftaught.controller import OperatorConfig, run
    from selftaught.jobs import JobSettings

    config = OperatorConfig(
        namespaces=tuple(args.namespace or ()),
        metrics_port=args.metrics_port,
        metrics_address=args.metrics_address,
        liveness=args.liveness,
        standalone=args.peering is None,
        peering=args.peering,
        priority=args.priority,
        peering_lifetime=args.peering_lifetime,
        workers=args.workers,
        resync_seconds=args.resync_seconds,
        relist_seconds=args.relist_seconds,
        jobs=JobSettings(
            ttl_seconds_after_finished=args.job_ttl_seconds,
            worker_image=args.worker_image,
            pushgateway=args.pushgateway or None,
        ),
    )
    run(config, verbose=args.verbose)
    return 0


def _priority(text: str) -> int:
    """``--priority``, resolved here (``auto``: from this host's name), so a typo is an
    argparse error that names the flag."""
    import socket

    from selftaught.controller.config import peering_priority

    try:
        return peering_priority(text, socket.gethostname())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or 'auto'") from None


def _lifetime(text: str) -> int:
    seconds = int(text)
    if seconds < 2:
        raise argparse.ArgumentTypeError(f"{seconds} s is too short for a keep-alive to arrive")
    return seconds


def _add_operator(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    operator = commands.add_parser(
        "operator", help="run the Kubernetes operator (kopf) that turns SelfTaughtRuns into Jobs"
    )
    operator.add_argument(
        "-n", "--namespace", action="append",
        help="watch this namespace (repeatable); default: all namespaces",
    )  # fmt: skip
    operator.add_argument("--metrics-port", type=int, default=9090, help="0 disables /metrics")
    operator.add_argument("--metrics-address", default="0.0.0.0")
    operator.add_argument("--liveness", help="e.g. http://0.0.0.0:8080/healthz")
    operator.add_argument(
        "--peering", help="kopf peering name for several replicas (default: standalone)"
    )
    operator.add_argument(
        "--priority",
        type=_priority,
        default="0",
        help="peering priority: a number, or 'auto' (from the pod's name, so replicas differ)",
    )
    operator.add_argument(
        "--peering-lifetime",
        type=_lifetime,
        default=60,
        help="seconds until a silent replica's peering entry expires (a standby takes over)",
    )
    operator.add_argument("--workers", type=int, default=4, help="concurrent reconciles")
    operator.add_argument("--resync-seconds", type=float, default=60.0)
    operator.add_argument(
        "--relist-seconds",
        type=float,
        default=300.0,
        help="a resync lists a run's Jobs and pods from the API after this long (jittered up to "
        "1.5x; else: watch caches)",
    )
    operator.add_argument("--job-ttl-seconds", type=int, default=86400)
    operator.add_argument(
        "--worker-image",
        default=os.environ.get("SELFTAUGHT_WORKER_IMAGE", "ghcr.io/selftaught/worker:0.1.0"),
        help="image of runs that name none (env SELFTAUGHT_WORKER_IMAGE)",
    )
    operator.add_argument(
        "--pushgateway",
        default=os.environ.get("SELFTAUGHT_PUSHGATEWAY_URL", ""),
        help="Pushgateway URL for workers' live progress (env SELFTAUGHT_PUSHGATEWAY_URL)",
    )
    operator.add_argument("-v", "--verbose", action="store_true")
    operator.set_defaults(func=_operator)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="selftaught", description="Train self-taught LLM judges, on Kubernetes or locally."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    crd = commands.add_parser("crd", help="print the SelfTaughtRun CRD generated from the types")
    crd.add_argument("-o", "--output", help="write to this file instead of stdout")
    crd.set_defaults(func=_crd)

    run = commands.add_parser("run", help="execute a SelfTaughtRun on this machine, no cluster")
    run.add_argument("manifest", type=Path, help="the SelfTaughtRun YAML (as for kubectl apply)")
    run.add_argument("--workdir", type=Path, default=Path("runs"), help="state and artifacts")
    run.add_argument("--no-progress", action="store_true", help="plain log lines, no live bars")
    run.add_argument(
        "--parallel", type=int, default=None, help="shards run at once (default: cores)"
    )
    run.set_defaults(func=_run)

    status = commands.add_parser(
        "status", help="print a run's iterations table: a local run directory or a cluster run"
    )
    status.add_argument(
        "run",
        metavar="NAME",
        help="WORKDIR/<run name> of a local run, else a SelfTaughtRun's name on the cluster",
    )
    status.add_argument(
        "-n",
        "--namespace",
        default=None,
        help="namespace of a cluster run (default: the kubeconfig context's, else default)",
    )
    status.add_argument(
        "--kubeconfig",
        default=None,
        help="kubeconfig file for a cluster run (default: $KUBECONFIG, else ~/.kube/config)",
    )
    status.set_defaults(func=_status)

    tiny = commands.add_parser(
        "tiny-model", help="build the tiny CPU judge used by the quick start"
    )
    tiny.add_argument("directory", type=Path)
    tiny.add_argument("--seed", type=int, default=0)
    tiny.add_argument("--no-warm-start", action="store_true", help="untrained weights only")
    tiny.set_defaults(func=_tiny_model)

    worker = commands.add_parser("worker", help="run one stage (the command inside a Job)")
    worker.add_argument("stage", choices=["select", "pairs", "judge", "train", "evaluate"])
    worker.add_argument(
        "--distributed",
        action="store_true",
        help="train only: start NPROC_PER_NODE processes per pod on NNODES pods (torch elastic; "
        "rendezvous from NODE_RANK, MASTER_ADDR, MASTER_PORT)",
    )
    worker.set_defaults(func=_worker)

    _add_operator(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
