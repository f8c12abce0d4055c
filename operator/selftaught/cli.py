"""``selftaught``: the command line. Heavy libraries are imported inside each command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from selftaught.controller.config import OperatorConfig


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
    from selftaught.worker import command

    return command(args.stage, distributed=args.distributed)


def _console() -> Console:
    """Rich's console; 140 columns in logs, where it would otherwise wrap tables at 80."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=140)


def _run(args: argparse.Namespace) -> int:
    """Validate everything a user handed us first, then start the fork server and the run.

    A refused manifest (or run name, or work directory) costs well under a second and never
    starts the server that imports torch; for a valid one the server's imports still overlap
    the runner's own start (reading the status, preparing plots).
    """
    from rich.markup import escape

    from selftaught.local.state import OutsideWorkdir, run_root
    from selftaught.manifests import ManifestError, load_run

    console = _console()
    try:
        manifest = load_run(args.manifest)
        run_root(args.workdir, manifest.name)
    except (ManifestError, OutsideWorkdir) as error:
        console.print(f"[red]{escape(str(error))}[/red]", highlight=False)
        return 2
    from selftaught.plan_command import preflight, template_problems

    if bad := template_problems(manifest.spec, local_run=True):  # before any stage process
        for problem in bad:
            console.print(f"[red]{escape(problem)}[/red]", highlight=False)
        return 2
    if refused := preflight(args.manifest):  # the capacity check, before any process starts
        print(f"selftaught run: {refused}", file=sys.stderr)
        return 1
    from selftaught.local import forkserver

    forkserver.start()
    from selftaught.local import LocalRunner, RunInterrupted
    from selftaught.local.display import Display
    from selftaught.local.runner import RunBusy

    live = False if args.no_progress else None
    try:
        runner = LocalRunner(
            manifest, args.workdir, display=Display(console, live=live), parallel=args.parallel
        )
        status = runner.run()
    except RunBusy as error:
        console.print(f"[red]{escape(str(error))}[/red]")
        return 3
    except RunInterrupted as error:
        console.print(f"[yellow]{escape(str(error))}[/yellow]")
        return 130
    console.print(f"status: {runner.directory.status_path}")
    if status.phase == "Succeeded" and status.best_model is not None:
        # spec.serve is the operator's (a Deployment); on one machine the judge is served here.
        console.print(
            f"serve the best judge: selftaught serve {runner.directory.root}",
            soft_wrap=True,
            markup=False,
        )
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


def _serve(args: argparse.Namespace) -> int:
    from selftaught.serving.local import main as serve

    return serve(args.run_dir, host=args.host, port=args.port)


def _serve_model(args: argparse.Namespace) -> int:
    from selftaught.serving.model import main, options_from

    return main(options_from(args))


def _score(args: argparse.Namespace) -> int:
    from selftaught.score_command import main as score

    code, text = score(args.dataset, args.judgments)
    print(text, file=sys.stdout if code == 0 else sys.stderr)
    return code


def _tiny_model(args: argparse.Namespace) -> int:
    from selftaught.tiny import build_tiny_model

    path = build_tiny_model(args.directory, seed=args.seed, warm_start=not args.no_warm_start)
    print(path)
    return 0


def operator_config(args: argparse.Namespace) -> OperatorConfig:
    """The settings from the flags given, then ``SELFTAUGHT_*``, then the defaults; an
    invalid one is an argparse error (exit 2) naming the flag or the variable."""
    from pydantic import ValidationError

    from selftaught.controller import OperatorConfig

    given = {name: getattr(args, name) for name in OperatorConfig.model_fields if name in args}
    parser: argparse.ArgumentParser = args.operator_parser
    try:
        return OperatorConfig(**given)
    except ValidationError as error:
        parser.error(_settings_error(error, given))


def _operator(args: argparse.Namespace) -> int:
    from selftaught.controller import StartupError, run

    config = operator_config(args)
    try:
        run(config, verbose=args.verbose)
    except StartupError as error:
        print(f"selftaught operator: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C before kopf took over the signals (still checking)
        return 130
    return 0


def _flag(field: str) -> str:
    from selftaught.controller.config import flag_names

    return flag_names(field)[-1]


def _settings_error(error: Any, given: dict[str, Any]) -> str:
    """The first invalid setting, named as the user gave it: the flag, else the env var."""
    from selftaught.controller import OperatorConfig

    first = error.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else ""
    if field in given:
        source = f"argument {_flag(field)}"
    elif field in OperatorConfig.model_fields:
        source = f"environment variable {OperatorConfig.env_name(field)}"
    else:  # an alias: the variable itself
        source = f"environment variable {field}"
    message = str(first["msg"]).removeprefix("Value error, ")
    value = first.get("input")
    shown = f" ({value!r})" if not isinstance(value, dict) and str(value) not in message else ""
    return f"{source}: {message}{shown}"


def _help(field: str, description: str | None, default: Any) -> str:
    """A field's docstring as its flag's help, with its default and env var (one source)."""
    from selftaught.controller.config import OperatorConfig, shown_default

    text = " ".join((description or "").split())
    variable = OperatorConfig.env_name(field)
    return f"{text} (default: {shown_default(default)}; env {variable})".replace("%", "%%")


def _add_operator(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``selftaught operator``: one flag per :class:`OperatorConfig` field, generated."""
    from selftaught.controller.config import OperatorConfig, flag_names

    operator = commands.add_parser(
        "operator",
        help="run the Kubernetes operator (kopf) that turns SelfTaughtRuns into Jobs",
        description="Every flag can also be set by its environment variable; a flag wins.",
    )
    for name, field in OperatorConfig.model_fields.items():
        flags = flag_names(name)
        many = field.annotation == tuple[str, ...]
        operator.add_argument(
            *flags,
            dest=name,
            action="append" if many else "store",
            default=argparse.SUPPRESS,  # absent: the environment, then the field's default
            metavar=name.removesuffix("s").upper() if many else name.upper(),
            help=_help(name, field.description, field.default),
        )
    operator.add_argument("-v", "--verbose", action="store_true", help="debug logs (default: off)")
    operator.set_defaults(func=_operator, operator_parser=operator)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="selftaught", description="Train self-taught LLM judges, on Kubernetes or locally."
    )
    parser.add_argument("--version", action="version", version=f"selftaught {_version()}")
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

    serve = commands.add_parser(
        "serve", help="serve a local run's best judge behind an OpenAI-compatible HTTP API"
    )
    serve.add_argument("run_dir", type=Path, help="WORKDIR/<run name>")
    serve.add_argument("--port", type=int, default=8000, help="TCP port; 0 picks a free one")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback)")
    serve.set_defaults(func=_serve)

    from selftaught.serving.model import add_arguments as add_server_arguments

    serve_model = commands.add_parser(
        "serve-model",
        help="fetch a judge through the storage layer and serve it (the operator's Deployment)",
    )
    add_server_arguments(serve_model)
    serve_model.set_defaults(func=_serve_model)

    score = commands.add_parser(
        "score", help="RewardBench's official score of judgments made elsewhere (JSON out)"
    )
    score.add_argument("--dataset", type=Path, required=True, help="RewardBench-format JSONL")
    score.add_argument("--judgments", type=Path, required=True, help="id, swapped, judgments")
    score.set_defaults(func=_score)

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
    from selftaught.plan_command import add_parser as add_plan

    add_plan(commands)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("selftaught")
    except PackageNotFoundError:  # a source tree on PYTHONPATH, not installed
        return "unknown (not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
