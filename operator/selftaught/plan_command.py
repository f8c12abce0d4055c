"""``selftaught plan MANIFEST``: does each stage of a run fit its GPUs, asked before any is held.

It first checks the run's prompt templates that are readable from here (:func:`template_problems`:
``file://`` ones; ``selftaught run`` uses the same check), so a bad placeholder is reported
before anything runs, naming the spec field.

Finds the seed model's config.json (``--model-config``, a local or file:// model directory, the
Hugging Face cache, or the built-in tiny judge's known shape), runs :mod:`selftaught.sizing` and
prints one row per stage. Exit codes: 0 every stage fits (or runs on CPU / on an unknown card),
1 a stage does not fit, 2 the manifest, a template or the model config cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlparse

if TYPE_CHECKING:  # the CLI registers this command without importing pydantic or the estimator
    from selftaught import sizing
    from selftaught.api import RunSpec
    from selftaught.capacity import Architecture
    from selftaught.template_sources import Source

TINY_PREFIX = "builtin://tiny-judge"


class ConfigNotFound(LookupError):
    """No config.json for the seed model could be found from where the command runs."""


def tiny_config() -> dict[str, Any]:
    """The built-in tiny judge's config, from its shape (known without building it)."""
    from selftaught.tiny.model import TinyShape

    shape = TinyShape()
    return {
        "vocab_size": shape.vocab,
        "hidden_size": shape.hidden,
        "intermediate_size": shape.intermediate,
        "num_hidden_layers": shape.layers,
        "num_attention_heads": shape.heads,
        "num_key_value_heads": shape.heads,
        "tie_word_embeddings": True,
        "max_position_embeddings": shape.max_positions,
    }


def _hf_cache(model: str) -> Path | None:
    """config.json of a hub id ("org/name") in the local Hugging Face cache, if present."""
    if model.count("/") != 1 or "://" in model:
        return None
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(model, "config.json")
    return Path(found) if isinstance(found, str) else None


def find_config(seed_model: str, model_config: Path | None) -> tuple[dict[str, Any], str]:
    """The seed model's config.json as a dict, and where it came from."""
    if model_config is not None:
        return _read(model_config), str(model_config)
    if seed_model.startswith(TINY_PREFIX):
        return tiny_config(), TINY_PREFIX
    parsed = urlparse(seed_model)
    candidates: list[Path] = []
    if parsed.scheme == "file":
        candidates.append(Path(parsed.path) / "config.json")
    elif not parsed.scheme:
        candidates.append(Path(seed_model) / "config.json")
        cached = _hf_cache(seed_model)
        if cached is not None:
            candidates.append(cached)
    for path in candidates:
        if path.is_file():
            return _read(path), str(path)
    raise ConfigNotFound(
        f"cannot read config.json of seedModel {seed_model!r} from here (not a local directory, "
        "not in the Hugging Face cache); pass it with --model-config FILE"
    )


def template_problems(spec: RunSpec, *, local_run: bool) -> list[str]:
    """What is wrong with the run's ``file://`` templates, read from here (s3:// ones are
    checked when their stage starts, configmap:// ones by the operator).

    ``local_run`` (``selftaught run``): the stages will read these very files, so an absent one
    is an error, and a configmap:// template cannot work (no cluster). For ``selftaught plan``
    a manifest may name files that exist only in the cluster's pods: absent ones are skipped.
    """
    from urllib.request import url2pathname

    from selftaught.template_sources import Unreadable, problems

    def read(source: Source) -> bytes | None:
        if source.configmap is not None:
            if local_run:
                raise Unreadable("a ConfigMap key needs a cluster; use a file:// template")
            return None
        parsed = urlparse(source.location)
        if parsed.scheme != "file":
            return None
        path = Path(url2pathname(parsed.path))
        if not path.is_file():
            if local_run:
                raise Unreadable(f"cannot be read: no such file {path}")
            return None
        try:
            return path.read_bytes()
        except OSError as error:
            raise Unreadable(f"cannot be read: {error}") from error

    return problems(spec, read)


def _read(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigNotFound(f"{path}: cannot read a JSON config: {error}") from error
    if not isinstance(document, dict):
        raise ConfigNotFound(f"{path}: not a JSON object")
    return document


def architecture_block(arch: Architecture) -> dict[str, Any]:
    """spec.modelArchitecture for the manifest, so the operator can check fit before any Job."""
    from selftaught import api

    fields = set(api.ModelArchitecture.model_fields)
    values = {k: v for k, v in vars(arch).items() if k in fields and v is not None}
    return api.ModelArchitecture(**values).dump()


def table(fits: list[sizing.StageFit], *, source: str, parameters: int) -> str:
    """The human table: one row per stage, then the parts of any stage that does not fit."""
    from selftaught import sizing
    from selftaught.gpus import GIB

    count = f"{parameters / 1e9:.2f} B" if parameters >= 1e8 else f"{parameters / 1e6:.2f} M"
    lines = [f"model: {count} parameters (config: {source})"]
    header = ("stage", "GPUs", "GiB/GPU", "usable GiB", "verdict", "setup")
    rows = [header]
    for fit in fits:
        budget = fit.budget_bytes
        rows.append(
            (
                fit.stage.value,
                str(fit.gpus),
                "-" if fit.verdict == sizing.NOT_CHECKED else f"{fit.estimate.total / GIB:.1f}",
                "-" if budget is None else f"{budget / GIB:.1f}",
                fit.verdict,
                fit.setup,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        lines.append("  ".join(cells).rstrip())
    for fit in fits:
        if fit.verdict in (sizing.FITS, sizing.NOT_CHECKED):
            continue
        lines.append("")
        lines.append(f"{fit.stage.value}: {fit.why}")
        for part, size in fit.estimate.parts.items():
            lines.append(f"  {part}: {size / GIB:.1f} GiB")
        for fix in fit.fixes:
            lines.append(f"  would fit with: {fix}")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """The command: exit 0 all fit, 1 a stage does not fit, 2 nothing could be checked."""
    out, err = out or sys.stdout, err or sys.stderr
    from selftaught import sizing
    from selftaught.capacity import Architecture
    from selftaught.manifests import ManifestError, load_run

    try:
        spec = load_run(args.manifest).spec
        if bad := template_problems(spec, local_run=False):
            for problem in bad:
                print(f"selftaught plan: {problem}", file=err)
            return 2
        config, source = find_config(spec.seed_model, args.model_config)
        arch = Architecture.from_config(config, source=source)
    except (ManifestError, ConfigNotFound, ValueError) as error:
        print(f"selftaught plan: {error}", file=err)
        return 2
    fits = sizing.check(spec, arch)
    if args.json:
        rows = [fit.as_dict() for fit in fits]
        json.dump({"parameters": arch.parameters, "config": source, "stages": rows}, out, indent=2)
        out.write("\n")
    else:
        out.write(table(fits, source=source, parameters=arch.parameters))
    if args.write:
        _write(args.manifest, Path(args.write), arch)
    return 1 if any(fit.verdict == sizing.DOES_NOT_FIT for fit in fits) else 0


def preflight(manifest: Path) -> str | None:
    """For ``selftaught run``: why the run cannot fit, when its model's config.json is readable
    from here (a local model, the HF cache); None when it fits or nothing can be known.

    A manifest that carries ``spec.modelArchitecture`` is left to the planner, which checks it
    the same way; a bad manifest is left to the runner, which reports it with its line.
    """
    from selftaught import sizing
    from selftaught.capacity import Architecture
    from selftaught.manifests import ManifestError, load_run

    try:
        spec = load_run(manifest).spec
        if spec.model_architecture is not None:
            return None
        config, source = find_config(spec.seed_model, None)
        arch = Architecture.from_config(config, source=source)
    except (ManifestError, ConfigNotFound, ValueError):
        return None
    refused = [
        sizing.message(f) for f in sizing.check(spec, arch) if f.verdict == sizing.DOES_NOT_FIT
    ]
    return "\n".join(refused) or None


def _write(manifest: Path, target: Path, arch: Architecture) -> None:
    """The manifest with spec.modelArchitecture set (comments are not kept)."""
    import yaml

    from selftaught import api

    documents = list(yaml.safe_load_all(manifest.read_text()))
    for document in documents:
        if isinstance(document, dict) and document.get("kind") == api.KIND:
            document["spec"]["modelArchitecture"] = architecture_block(arch)
    target.write_text(yaml.safe_dump_all(documents, sort_keys=False))


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``plan`` on the CLI's subcommands."""
    plan = commands.add_parser(
        "plan", help="estimate each stage's GPU memory and check that it fits, before running"
    )
    plan.add_argument("manifest", type=Path, help="the SelfTaughtRun YAML")
    plan.add_argument(
        "--model-config", type=Path, help="the seed model's config.json, when its storage is "
        "not reachable from here",
    )  # fmt: skip
    plan.add_argument("--json", action="store_true", help="print JSON rows (bytes) instead")
    plan.add_argument(
        "--write", metavar="FILE", help="also write the manifest with spec.modelArchitecture "
        "filled in, so the operator checks fit before creating any Job",
    )  # fmt: skip
    plan.set_defaults(func=run)
