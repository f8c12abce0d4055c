"""`selftaught run` on a hostile file: refused fast, clearly, never escaping its workdir.

Each case is a file an adversarial user could hand the embedded runner: an alias bomb, deep
nesting, bytes that are not UTF-8, two documents, duplicate keys, a run name that walks out of
the work directory. The loader refuses each with a message naming the line (or byte); the CLI
exits 2 with no traceback, in well under a second, before the fork server (torch) starts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from selftaught import safeyaml
from selftaught.local.state import OutsideWorkdir, run_root
from selftaught.manifests import ManifestError, load_run
from tests.unit.test_manifests import GOOD

ROOT = Path(__file__).resolve().parents[2]


def alias_bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels + 1):
        refs = ",".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return GOOD + "\n".join(lines) + "\n"


def nested(depth: int = 20_000) -> str:
    return GOOD + "deep: " + "[" * depth + "]" * depth + "\n"


#: (id, file content as bytes, words the message must contain)
HOSTILE: list[tuple[str, bytes, str]] = [
    ("alias-bomb", alias_bomb().encode(), "expands to more than"),
    ("deep-nesting", nested().encode(), "nested more than 64 levels"),
    ("invalid-utf8", GOOD.replace("local", "loc\xff").encode("latin-1"), "line 4 (byte"),
    ("utf16", GOOD.encode("utf-16"), "UTF-16"),
    ("utf32", GOOD.encode("utf-32"), "UTF-32"),
    ("two-documents", (GOOD + "---\n" + GOOD).encode(), "line 14: a second YAML document"),
    (
        "duplicate-keys",
        GOOD.replace("  name: local\n", "  name: local\n  name: other\n").encode(),
        "line 5: duplicate key 'name' (first on line 4)",
    ),
    (
        "escaping-name",
        GOOD.replace("name: local", "name: ../../../x").encode(),
        "metadata.name: Invalid value: '../../../x': a lowercase RFC 1123 label",
    ),
    ("too-big", GOOD.encode() + b"#" * (safeyaml.MAX_BYTES + 1), "at most 1,048,576"),
    ("not-a-run", b"kind: ConfigMap\n", "not a SelfTaughtRun"),
    ("empty", b"", "not a SelfTaughtRun"),
]


@pytest.mark.parametrize(("data", "words"), [pytest.param(d, w, id=i) for i, d, w in HOSTILE])
def test_a_hostile_file_is_refused_fast_with_a_clear_message(
    tmp_path: Path, data: bytes, words: str
) -> None:
    path = tmp_path / "run.yaml"
    path.write_bytes(data)
    started = time.perf_counter()
    with pytest.raises(ManifestError) as caught:
        load_run(path)
    assert time.perf_counter() - started < 1.0
    assert str(caught.value).startswith(str(path))
    assert words in str(caught.value)


def test_aliases_within_bounds_still_load(tmp_path: Path) -> None:
    """Aliases are bounded, not banned: a file that reuses a block stays valid YAML."""
    text = GOOD.replace(
        "  stages:\n    judge: {engine: transformers, gpus: 0}\n",
        "  stages:\n    judge: &cpu {engine: transformers, gpus: 0}\n    pairs: *cpu\n",
    )
    path = tmp_path / "run.yaml"
    path.write_text(text)
    run = load_run(path)
    assert run.spec.stages.pairs.engine == "transformers"


def test_the_alias_count_is_linear_not_expanded() -> None:
    """The bomb's expansion (9**10 nodes) is measured from the events, never built."""
    started = time.perf_counter()
    with pytest.raises(safeyaml.UnsafeYAML):
        safeyaml.check_events(alias_bomb(levels=30))
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize("name", ["..", "a/b", "../x", "Bad_Name", ""])
def test_a_run_directory_never_leaves_the_workdir(tmp_path: Path, name: str) -> None:
    with pytest.raises(OutsideWorkdir):
        run_root(tmp_path, name)


def test_a_symlink_planted_at_the_run_directory_is_refused(tmp_path: Path) -> None:
    workdir = tmp_path / "runs"
    workdir.mkdir()
    (workdir / "local").symlink_to(tmp_path)
    with pytest.raises(OutsideWorkdir, match="leads outside the work directory"):
        run_root(workdir, "local")
    assert run_root(workdir, "other") == workdir.resolve() / "other"


def run_cli(tmp_path: Path, data: bytes) -> tuple[subprocess.CompletedProcess[str], float]:
    path = tmp_path / "run.yaml"
    path.write_bytes(data)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "operator")}
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "selftaught.cli",
            "run",
            str(path),
            "--workdir",
            str(tmp_path / "w"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    return result, time.perf_counter() - started


@pytest.mark.parametrize(
    ("data", "words"),
    [
        pytest.param(alias_bomb().encode(), "expands to more than", id="alias-bomb"),
        pytest.param(nested().encode(), "nested more than", id="deep-nesting"),
        pytest.param(GOOD.encode("utf-16"), "UTF-16", id="utf16"),
        pytest.param(
            GOOD.replace("name: local", "name: ../../../x").encode(), "RFC 1123", id="escape"
        ),
    ],
)
def test_the_cli_refuses_a_hostile_file_with_exit_2_before_the_fork_server(
    tmp_path: Path, data: bytes, words: str
) -> None:
    result, seconds = run_cli(tmp_path, data)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert words in output
    assert "Traceback" not in output
    assert not (tmp_path / "w").exists()  # nothing was written, nowhere
    # Measured 0.43 s on quiet cores, up to 1.5 s beside a test run; the loader itself takes
    # about 1 ms (test above). The torch fork server alone would add ~15 s.
    assert seconds < 3.0, f"refusal took {seconds:.2f} s"
