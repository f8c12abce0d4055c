"""``kubectl selftaught COMMAND``: read and steer SelfTaughtRuns without reading YAML.

kubectl finds the ``kubectl-selftaught`` executable on the PATH and runs it with the remaining
arguments. Each command reads the run once, decides in :mod:`selftaught.plugin.requests`, then
writes at most one merge patch. Any refusal is one line on stderr and exit status 1 (2 for a
malformed command line, as argparse does): a person sees what to fix, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table

from selftaught.plugin.kube import Cluster
from selftaught.plugin.requests import (
    PluginError,
    comparison,
    latest_attempt,
    log_target,
    retry_patch,
    served_service,
    stage_of,
    suspend_patch,
)

PROG = "kubectl selftaught"


def _console() -> Console:
    console = Console()
    return console if console.is_terminal else Console(width=140)


def status(cluster: Cluster, args: argparse.Namespace, console: Console) -> int:
    """The iterations table ``selftaught status`` prints, from the run's status."""
    from selftaught.local.display import iterations_table
    from selftaught.status_view import summary_lines

    run = cluster.run(args.run)
    console.print(iterations_table(run.status))
    for line in summary_lines(run.status):
        console.print(line, highlight=False, markup=False)
    return 0


def logs(cluster: Cluster, args: argparse.Namespace, console: Console) -> int:
    """The logs of the stage's pods (latest attempt), one pod after another."""
    run = cluster.run(args.run)
    target = log_target(run, stage=stage_of(args.stage), iteration=args.iteration, shard=args.shard)
    pods = latest_attempt(cluster.pods(target.selector))
    if not pods:
        raise PluginError(f"no pods for {target.what} (not started yet, or already deleted)")
    for pod in pods:
        name = pod["metadata"]["name"]
        if len(pods) > 1:
            sys.stdout.write(f"==> pod {name} <==\n")
        for chunk in cluster.log_lines(name, follow=args.follow):
            sys.stdout.write(chunk)
        sys.stdout.flush()
    return 0


def retry(cluster: Cluster, args: argparse.Namespace, console: Console) -> int:
    run = cluster.run(args.run)
    stage = stage_of(args.stage)
    request = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    patch = retry_patch(run, stage=stage, iteration=args.iteration, request=request)
    cluster.patch_run(args.run, patch)
    print(f"selftaughtrun/{args.run} resumes from iteration {args.iteration}, {stage.value}")
    return 0


def suspend(cluster: Cluster, args: argparse.Namespace, console: Console) -> int:
    cluster.run(args.run)  # a clear "not found" before patching
    cluster.patch_run(args.run, suspend_patch(suspend=args.command == "suspend"))
    print(f"selftaughtrun/{args.run} {args.command}d")
    return 0


def compare(cluster: Cluster, args: argparse.Namespace, console: Console) -> int:
    """Runs side by side: best accuracy, the best iteration's scores by set and section, cost."""
    columns = [comparison(name, cluster.run(name).status) for name in args.runs]
    table = Table(title="runs compared (scores of each run's best iteration)")
    table.add_column("")
    for column in columns:
        table.add_column(column.name, justify="right")

    def row(label: str, cells: list[str]) -> None:
        table.add_row(label, *cells)

    row("phase", [c.phase for c in columns])
    row("iteration", [c.progress for c in columns])
    row("best iteration", [_text(c.best_iteration) for c in columns])
    row("best accuracy", [_score(c.best_accuracy) for c in columns])
    keys = sorted({key for c in columns for key in c.scores})
    for key in keys:
        row(key, [_score(c.scores.get(key)) for c in columns])
    row("GPU-hours", [f"{c.gpu_hours:.2f}" for c in columns])
    console.print(table)
    return 0


def judge(cluster: Cluster, args: argparse.Namespace, console: Console) -> int:
    """Ask the run's served judge; exit 1 when no verdict came back."""
    from pathlib import Path

    from selftaught.plugin.judging import ask

    run = cluster.run(args.run)  # the run must exist; its name is the served model's id
    base, transport = args.url, None
    if base is None:  # the operator's judge server (spec.serve), through the Service proxy
        service, port = served_service(run)
        base = run.status.serving.endpoint if run.status.serving else None
        transport = cluster.proxy(service, port)
    answers = []
    for flag, name in (("--a", args.a), ("--b", args.b)):
        try:
            answers.append(Path(name).read_text())
        except OSError as error:
            raise PluginError(f"{flag} {name}: {error.strerror}") from None
    ruling = ask(
        base or "", model=args.run, question=args.question, answer_a=answers[0],
        answer_b=answers[1], samples=args.samples, max_tokens=args.max_tokens,
        transport=transport,
    )  # fmt: skip
    for number, text in enumerate(ruling.judgments, start=1):
        print(f"--- judgment {number}\n{text}")
    if ruling.verdict is None:
        raise PluginError("the judge gave no verdict ([[A]] or [[B]]), or its samples tied")
    print(f"verdict: {ruling.verdict} is better")
    return 0


def _text(value: object) -> str:
    return "-" if value is None else str(value)


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-n", "--namespace", help="namespace (default: the context's)")
    common.add_argument("--context", help="kubeconfig context (default: the current one)")
    common.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube)")
    parser = argparse.ArgumentParser(
        prog=PROG, parents=[common], description="Inspect and steer SelfTaughtRuns."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text, description=text, parents=[common])
        return sub

    sub = command("status", "the run's iterations table (as `selftaught status`)")
    sub.add_argument("run")
    sub.set_defaults(func=status)

    sub = command("logs", "the logs of a stage's pods (latest attempt)")
    sub.add_argument("run")
    sub.add_argument("--stage", required=True, help="select, pairs, judge, train or evaluate")
    sub.add_argument("--iteration", type=int, help="default: the run's current iteration")
    sub.add_argument("--shard", type=int, help="one shard of a sharded stage (from 0)")
    sub.add_argument("-f", "--follow", action="store_true", help="stream until the pods end")
    sub.set_defaults(func=logs)

    sub = command("retry", "re-run from a stage of an iteration (sets spec.resumeFrom)")
    sub.add_argument("run")
    sub.add_argument("--from", dest="stage", required=True, help="the stage to re-run from")
    sub.add_argument("--iteration", type=int, required=True)
    sub.set_defaults(func=retry)

    for name, text in (("suspend", "pause the run"), ("resume", "continue a suspended run")):
        sub = command(name, f"{text} (sets spec.suspend)")
        sub.add_argument("run")
        sub.set_defaults(func=suspend)

    sub = command("compare", "runs side by side: best accuracy, section scores, GPU-hours")
    sub.add_argument("runs", nargs="+", metavar="RUN")
    sub.set_defaults(func=compare)

    sub = command("judge", "ask the run's served judge which answer is better")
    sub.add_argument("run")
    sub.add_argument("--a", required=True, metavar="FILE", help="answer A")
    sub.add_argument("--b", required=True, metavar="FILE", help="answer B")
    sub.add_argument("--question", required=True, help="the user request both answers answer")
    sub.add_argument(
        "--url",
        help="the judge's OpenAI-compatible base URL (default: the run's judge server, "
        "spec.serve, through the API server's Service proxy)",
    )
    sub.add_argument("--samples", type=int, default=1, help="judgments; the majority wins")
    sub.add_argument("--max-tokens", type=int, help="per judgment (default: the server's)")
    sub.set_defaults(func=judge)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cluster = Cluster(
            kubeconfig=args.kubeconfig, context=args.context, namespace=args.namespace
        )
    except PluginError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 1
    try:
        return int(args.func(cluster, args, _console()))
    except PluginError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 1
    finally:
        cluster.close()


if __name__ == "__main__":
    raise SystemExit(main())
