"""Bad input through the real path: ``kubectl apply`` of bad manifests (422 naming the field),
and real select workers, run by the kubelet for the operator, on a ragged instruction pool, on a
pool with no usable line and on a seed model that does not exist.

The full suite of 45 bad manifests is ``tests/unit/test_crd.py::test_bad_manifest_is_refused_
naming_the_field`` (schema + CEL, in-process); unparsable judge outputs (invalid, scored 0.5) are
``tests/unit/test_scoring.py`` (``example_score``, ``test_invalid_and_position_consistency``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from selftaught.phases import Stage
from tests.e2e.conftest import E2E, run_manifest
from tests.reliability.conftest import Operators, instant_stages, job_names, pods_of
from tests.unit.test_crd import BAD

pytestmark = pytest.mark.e2e

APPLIED = ("iterations-zero", "temperature-negative", "unknown-nested-field", "storage-uri-http")


def test_kubectl_apply_of_bad_manifests_names_the_field(cluster: E2E) -> None:
    cases = {case: (document, field) for case, document, field in BAD if case in APPLIED}
    assert set(cases) == set(APPLIED)
    for case, (document, field) in cases.items():
        body = dict(document, metadata={"name": f"bad-{case}"})
        answer = cluster.ns("apply", "-f", "-", input=json.dumps(body), check=False)
        assert answer.returncode != 0, case
        assert field in answer.stderr, (case, answer.stderr)
    assert cluster.get("selftaughtruns")["items"] == []


def failed_message(status: dict[str, Any]) -> tuple[str, str]:
    failed = {c["type"]: c for c in status["conditions"]}["Failed"]
    return failed["reason"], failed["message"]


@pytest.mark.slow
def test_bad_pools_and_a_missing_seed_model(
    cluster: E2E, operators: Operators, tmp_path: Path, ledger: Callable[..., None]
) -> None:
    started = time.monotonic()
    from selftaught.tiny import build_tiny_model
    from tests.unit.stage_env import SMALL

    model = build_tiny_model(tmp_path / "model", warm_start=False, shape=SMALL).as_uri()
    good = [json.dumps({"instruction": f"add {i} {i + 1}"}) for i in range(12)]
    ragged = tmp_path / "ragged.jsonl"
    ragged.write_text("\n".join([*good[:4], "not json", *good[4:8], '{"prompt": "x"}',
                                 *good[8:], '{"instruction": ""}']) + "\n")  # fmt: skip
    hollow = tmp_path / "hollow.jsonl"
    hollow.write_text('not json\n{"prompt": "x"}\n[1, 2]\n')
    instant_stages(cluster, 1, run="ragged", real=(Stage.SELECT,))
    operator = operators.start()

    def pool_run(name: str, pool: Path) -> dict[str, Any]:
        return run_manifest(
            name,
            seedModel=model,
            instructions={"source": pool.as_uri(), "categories": ["math", "list", "other"]},
            # token limits that fit the small model's 128 positions: select drops instructions
            # whose judging prompt (two answers of pairs.maxNewTokens) cannot fit its context
            pairs={"maxNewTokens": 8},
            judging={"maxNewTokens": 16, "samplesPerPair": 2},
            evaluation={"maxNewTokens": 16},
        )

    cluster.apply(pool_run("ragged", ragged))
    cluster.apply(pool_run("hollow", hollow))
    cluster.apply(run_manifest("nope", seedModel="file:///nope/model"))

    # Malformed lines are counted and reported with line numbers; the run goes on.
    cluster.wait_phase("ragged", "Succeeded", timeout=120)
    (pod,) = pods_of(cluster, "ragged-i0-sel-a0")
    summary = json.loads(pod["status"]["containerStatuses"][0]["state"]["terminated"]["message"])
    assert (summary["badLines"], summary["badLineNumbers"], summary["read"]) == (3, [5, 10, 15], 15)

    # No usable line: BadInput at once, naming the pool and the bad lines; not retried.
    reason, message = failed_message(cluster.wait_phase("hollow", "Failed", timeout=120)["status"])
    assert reason == "BadInput"
    assert "no usable line" in message
    assert hollow.as_uri() in message
    assert "[1, 2, 3]" in message
    assert job_names(cluster, "hollow") == ["hollow-i0-sel-a0"]

    # A seed model that does not exist: BadInput naming the path; not retried.
    reason, message = failed_message(cluster.wait_phase("nope", "Failed", timeout=120)["status"])
    assert reason == "BadInput"
    assert "file:///nope/model" in message
    assert "not retried" in message
    assert job_names(cluster, "nope") == ["nope-i0-sel-a0"]
    assert operators.stop(operator) == 0
    seconds = time.monotonic() - started
    for scenario, outcome in (
        ("pool with 3 malformed of 15 lines", "Succeeded; badLines 3 at lines [5, 10, 15]"),
        ("pool with no usable line", "Failed BadInput at once, names pool + lines"),
        ("seedModel file:///nope/model", "Failed BadInput at once, names the path"),
    ):
        ledger(scenario, trials=1, lost=0, duplicates=0, outcome=outcome, seconds=seconds)
