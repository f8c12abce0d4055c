"""``selftaught serve-model``: the judge server's entrypoint inside the operator's Deployment.

It fetches the judge through the storage layer the stages use
(:func:`selftaught.storage.materialize_model`: ``s3://`` downloaded once into the model cache
and verified, ``file://`` on the PVC used in place, ``builtin://`` built), then serves it:

* ``--engine vllm``: replaces itself with ``vllm serve DIR --served-model-name RUN ...`` (vLLM's
  own OpenAI-compatible server, in the worker image; never imported here);
* ``--engine transformers``: the project's server (:mod:`selftaught.serving.app`) on the
  transformers engine, which answers the same routes (``/health``, ``/v1/models``,
  ``/v1/chat/completions``): small judges on CPU, and the tests.

Both bind only once the model is loaded, so the Deployment's readiness probe on ``/health``
admits a replica exactly when it can judge.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from selftaught.pod import CACHE_ENV

#: Exit status for input that will not get better by restarting (a missing model).
EXIT_BAD_INPUT = 2
DEFAULT_CACHE = "/tmp/selftaught-cache"


@dataclass(frozen=True)
class ServerOptions:
    """``selftaught serve-model``'s command line (:mod:`selftaught.serving_manifests` builds it)."""

    model_uri: str
    name: str
    engine: str = "vllm"
    port: int = 8000
    host: str = "0.0.0.0"
    iteration: int | None = None
    tensor_parallel: int = 1
    seed: int = 0
    max_model_len: int | None = None
    s3_settings: str | None = None
    extra_args: list[str] = field(default_factory=list)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model-uri", required=True, help="the judge: s3://, file:// or builtin://"
    )
    parser.add_argument("--name", required=True, help="model id clients send (the run's name)")
    parser.add_argument("--engine", choices=("vllm", "transformers"), default="vllm")
    parser.add_argument("--port", type=int, default=8000, help="TCP port to listen on")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on")
    parser.add_argument("--iteration", type=int, default=None, help="iteration served (logged)")
    parser.add_argument("--tensor-parallel", type=int, default=1, help="GPUs per replica (vLLM)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument("--max-model-len", type=int, default=None, help="context, tokens (vLLM)")
    parser.add_argument("--s3-settings", default=None, help="spec.storage.s3 as JSON")
    parser.add_argument("extra_args", nargs="*", help="after --: more arguments for vllm serve")


def options_from(args: argparse.Namespace) -> ServerOptions:
    return ServerOptions(
        model_uri=args.model_uri,
        name=args.name,
        engine=args.engine,
        port=args.port,
        host=args.host,
        iteration=args.iteration,
        tensor_parallel=args.tensor_parallel,
        seed=args.seed,
        max_model_len=args.max_model_len,
        s3_settings=args.s3_settings,
        extra_args=list(args.extra_args),
    )


def vllm_argv(options: ServerOptions, model_dir: Path) -> list[str]:
    """``vllm serve`` with the judge's directory, named after the run (what clients send)."""
    argv = [
        "vllm", "serve", str(model_dir),
        "--host", options.host,
        "--port", str(options.port),
        "--served-model-name", options.name,
        "--tensor-parallel-size", str(options.tensor_parallel),
        "--seed", str(options.seed),
    ]  # fmt: skip
    if options.max_model_len:
        argv += ["--max-model-len", str(options.max_model_len)]
    return [*argv, *options.extra_args]


def fetch(options: ServerOptions) -> Path:
    """The judge as a local directory, through the stages' storage layer."""
    from selftaught.api import S3Settings
    from selftaught.storage import materialize_model

    s3 = S3Settings.model_validate(json.loads(options.s3_settings)) if options.s3_settings else None
    cache = Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)
    return materialize_model(options.model_uri, cache, s3=s3)


def main(options: ServerOptions) -> int:
    """Fetch, then serve until SIGTERM (the kubelet's stop); exit 2 on a judge that is not there."""
    from selftaught.storage import StorageError

    try:
        model_dir = fetch(options)
    except (StorageError, ValueError) as error:
        print(f"selftaught serve-model: {options.model_uri}: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(
        f"serving {options.name} (iteration {options.iteration}) from {options.model_uri} "
        f"with {options.engine} on {options.host}:{options.port}",
        flush=True,
    )
    if options.engine == "vllm":
        argv = vllm_argv(options, model_dir)
        executable = shutil.which(argv[0])
        if executable is None:
            print("selftaught serve-model: vllm is not installed in this image", file=sys.stderr)
            return EXIT_BAD_INPUT
        os.execv(executable, argv)  # never returns
    return _serve_transformers(options, model_dir)


def _serve_transformers(options: ServerOptions, model_dir: Path) -> int:
    from selftaught.engines import make_engine
    from selftaught.prompts import prompt_style
    from selftaught.serving.app import ServedModel, bind, run_forever

    engine = make_engine("transformers", model_dir, seed=options.seed)
    sock = bind(options.host, options.port)
    style = prompt_style(model_dir)
    uri = options.model_uri
    served = ServedModel(engine=engine, name=options.name, uri=uri, prompt_style=style)
    run_forever(served, sock)
    return 0


def run(argv: Sequence[str]) -> int:
    """Parse ``argv`` (without the command name) and serve: for tests and ``python -m``."""
    parser = argparse.ArgumentParser(prog="selftaught serve-model")
    add_arguments(parser)
    return main(options_from(parser.parse_args(list(argv))))
