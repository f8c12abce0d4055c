"""``selftaught``: the command line. Heavy libraries are imported inside each command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


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
    from selftaught.worker import main

    return int(main(args.stage))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="selftaught", description="Train self-taught LLM judges, on Kubernetes or locally."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    crd = commands.add_parser("crd", help="print the SelfTaughtRun CRD generated from the types")
    crd.add_argument("-o", "--output", help="write to this file instead of stdout")
    crd.set_defaults(func=_crd)

    worker = commands.add_parser("worker", help="run one stage (the command inside a Job)")
    worker.add_argument("stage", choices=["select", "pairs", "judge", "train", "evaluate"])
    worker.set_defaults(func=_worker)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
