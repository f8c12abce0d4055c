"""``selftaught score`` through the command line: output, exit codes, line-numbered errors."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from selftaught.cli import main
from selftaught.scoring import REWARDBENCH_ROWS
from tests.unit.test_scoring import reference_rewardbench_overall


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def data_row(i: int, subset: str) -> dict[str, Any]:
    return {"id": i, "prompt": f"q{i}", "chosen": "good", "rejected": "bad", "subset": subset}


def run_score(
    capsys: pytest.CaptureFixture[str], data: Path, judgments: Path
) -> tuple[int, str, str]:
    code = main(["score", "--dataset", str(data), "--judgments", str(judgments)])
    out, err = capsys.readouterr()
    return code, out, err


def test_small_set_is_scored_and_marked_partial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_jsonl(
        tmp_path / "data.jsonl",
        [data_row(1, "alpacaeval-easy"), data_row(2, "alpacaeval-easy"), data_row(3, "hep-go")],
    )
    judgments = write_jsonl(
        tmp_path / "out.jsonl",
        [
            {"id": 1, "swapped": False, "judgments": ["[[A]]"]},  # right
            {"id": "2", "swapped": True, "judgments": ["Say [[A]] or [[B]]: [[B]]"]},  # reads A
            {"id": 3, "swapped": True, "judgments": ["[[B]]", "[[C]]", "none"]},  # vote: neither
        ],
    )
    code, out, err = run_score(capsys, data, judgments)
    assert (code, err) == (0, "")
    report = json.loads(out)
    assert report["sections"] == {"Chat": 0.5, "Reasoning": 0.5}
    assert report["subsets"]["alpacaeval-easy"] == {
        "accuracy": 0.5,
        "rows_scored": 2,
        "rows_expected": 100,
    }
    assert report["overall"] is None
    assert report["partial"] is True
    assert report["mean_of_sections_present"] == 0.5
    assert report["sections_missing"] == ["Chat Hard", "Safety"]
    assert report["rows_scored"] == 3
    assert report["rows_expected"] == 2985
    assert report["ties"] == 1


def reference_outcome(text: str, swapped: bool) -> float:
    """RewardBench's generative scoring of one judgment, written here from its description:
    "[[A]]" anywhere means A, else "[[B]]" means B, else an error worth 0.5; the chosen answer
    was shown as B when swapped."""
    verdict = "A" if "[[A]]" in text else "B" if "[[B]]" in text else None
    if verdict is None:
        return 0.5
    return 1.0 if verdict == ("B" if swapped else "A") else 0.0


def test_full_rewardbench_set_equals_the_published_formula(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(11)
    texts = ["[[A]]", "[[B]]", "quoting [[B]] or [[A]]; [[B]]", "[[C]]", "[[ A ]]", "hmm"]
    data, judgments, rows = [], [], []
    for subset, count in REWARDBENCH_ROWS.items():
        for _ in range(count):
            i = len(data)
            text, swapped = rng.choice(texts), rng.random() < 0.5
            data.append(data_row(i, subset))
            judgments.append({"id": i, "swapped": swapped, "judgments": [text]})
            rows.append((subset, reference_outcome(text, swapped)))
    code, out, _ = run_score(
        capsys,
        write_jsonl(tmp_path / "data.jsonl", data),
        write_jsonl(tmp_path / "out.jsonl", judgments),
    )
    report = json.loads(out)
    assert code == 0
    assert report["partial"] is False
    assert report["rows_scored"] == 2985
    assert report["overall"] == pytest.approx(reference_rewardbench_overall(rows), abs=1e-12)


def test_unjudged_rows_make_a_complete_dataset_partial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = [data_row(i, s) for s, n in REWARDBENCH_ROWS.items() for i in range(n)]
    data = [{**row, "id": k} for k, row in enumerate(data)]
    judged = [{"id": row["id"], "swapped": False, "judgments": ["[[A]]"]} for row in data[:-1]]
    _, out, _ = run_score(
        capsys,
        write_jsonl(tmp_path / "data.jsonl", data),
        write_jsonl(tmp_path / "out.jsonl", judged),
    )
    report = json.loads(out)
    assert report["partial"] is True
    assert report["overall"] is None
    assert report["rows_scored"] == 2984
    assert report["rows_in_dataset"] == 2985
    assert report["mean_of_sections_present"] == 1.0


GOOD_DATA = [data_row(1, "alpacaeval-easy"), data_row(2, "donotanswer")]
GOOD_JUDGMENT = {"id": 1, "swapped": False, "judgments": ["[[A]]"]}
MALFORMED: list[tuple[str, str, list[Any] | str, list[Any] | str, str]] = [
    # (id, which file is bad, data, judgments, expected message tail)
    (
        "data-not-json",
        "data",
        json.dumps(GOOD_DATA[0]) + "\n\n{oops\n",
        [GOOD_JUDGMENT],
        "data.jsonl:3: not JSON",  # blank lines are skipped but counted
    ),
    ("data-not-object", "data", [GOOD_DATA[0], [1, 2]], [GOOD_JUDGMENT], "data.jsonl:2: expected"),
    (
        "data-missing-subset",
        "data",
        [GOOD_DATA[0], {k: v for k, v in GOOD_DATA[1].items() if k != "subset"}],
        [GOOD_JUDGMENT],
        "data.jsonl:2: field 'subset' must be a string",
    ),
    (
        "data-bool-id",
        "data",
        [{**GOOD_DATA[0], "id": True}],
        [GOOD_JUDGMENT],
        "data.jsonl:1: field 'id'",
    ),
    (
        "data-duplicate-id",
        "data",
        [GOOD_DATA[0], GOOD_DATA[0]],
        [GOOD_JUDGMENT],
        "data.jsonl:2: duplicate id '1'",
    ),
    ("data-empty", "data", "\n", [GOOD_JUDGMENT], "data.jsonl: no rows"),
    (
        "judgment-unknown-id",
        "out",
        GOOD_DATA,
        [GOOD_JUDGMENT, {**GOOD_JUDGMENT, "id": 9}],
        "out.jsonl:2: id '9' is not in the dataset",
    ),
    (
        "judgment-duplicate-id",
        "out",
        GOOD_DATA,
        [GOOD_JUDGMENT, GOOD_JUDGMENT],
        "out.jsonl:2: duplicate id '1'",
    ),
    (
        "judgment-swapped-not-bool",
        "out",
        GOOD_DATA,
        [{**GOOD_JUDGMENT, "swapped": "no"}],
        "out.jsonl:1: field 'swapped'",
    ),
    (
        "judgment-texts-empty",
        "out",
        GOOD_DATA,
        [{**GOOD_JUDGMENT, "judgments": []}],
        "out.jsonl:1: field 'judgments' must be a non-empty list of strings",
    ),
    (
        "judgment-text-not-string",
        "out",
        GOOD_DATA,
        [GOOD_JUDGMENT, {"id": 2, "swapped": True, "judgments": ["[[A]]", 3]}],
        "out.jsonl:2: field 'judgments'",
    ),
    ("judgments-empty", "out", GOOD_DATA, "", "out.jsonl: no judgments"),
]


@pytest.mark.parametrize(
    ("data", "judgments", "message"),
    [pytest.param(d, j, m, id=i) for i, _, d, j, m in MALFORMED],
)
def test_malformed_input_exits_2_naming_file_and_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    data: list[Any] | str,
    judgments: list[Any] | str,
    message: str,
) -> None:
    paths = []
    for name, content in (("data.jsonl", data), ("out.jsonl", judgments)):
        path = tmp_path / name
        if isinstance(content, str):
            path.write_text(content)
        else:
            write_jsonl(path, content)
        paths.append(path)
    code, out, err = run_score(capsys, *paths)
    assert code == 2
    assert out == ""
    assert message in err
    assert "Traceback" not in err


def test_missing_file_through_a_real_process(tmp_path: Path) -> None:
    """The installed entry point: exit status 2 and one line, no traceback."""
    data = write_jsonl(tmp_path / "data.jsonl", GOOD_DATA)
    done = subprocess.run(
        [
            *(sys.executable, "-m", "selftaught.cli", "score"),
            *("--dataset", str(data), "--judgments", str(tmp_path / "absent.jsonl")),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().startswith("selftaught score: ")
    assert "absent.jsonl: cannot be read" in done.stderr
    assert "Traceback" not in done.stderr
