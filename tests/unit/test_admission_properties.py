"""Generated values, field by field: admission refuses what Kubernetes would refuse in the Job.

For each kind of field that reaches a pod (quantity, object name, label key, label value,
Secret key, image), hypothesis draws values, valid and not, from the characters that matter.
Two properties hold for each:

* **sound**: when admission accepts a value, the Job built from the run passes
  ``kubernetes-validate`` (Kubernetes' own schemas, strict) and Kubernetes' grammar for that
  field, written here a second time, procedurally, as kube-apiserver's Go code reads (no shared
  regex with :mod:`selftaught.kubegrammar`; the ``kubernetes`` client's ``parse_quantity`` for
  quantities). So the Job builder never receives a value the API server would refuse.
* **complete**: when that grammar refuses a value, admission refuses it too (images excepted:
  admission also refuses inner whitespace, which Kubernetes allows but no registry does).
"""

from __future__ import annotations

import string
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import kubernetes_validate
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes.utils import parse_quantity

from selftaught.api import SelfTaughtRun
from selftaught.jobs import build_job
from selftaught.plan import plan
from selftaught.validation import admit
from tests.unit.planning import T0
from tests.unit.test_crd import base

KUBE = "1.29.0"
LOWER = string.ascii_lowercase + string.digits

# --- Kubernetes' rules, procedurally (k8s.io/apimachinery/pkg/util/validation) ----------------


def _alnum(c: str) -> bool:
    return c.isascii() and c.isalnum()


def _label_chars(text: str) -> bool:
    return (
        text != ""
        and all(c in LOWER or c == "-" for c in text)
        and text[0] in LOWER
        and text[-1] in LOWER
    )


def dns_subdomain(text: str) -> bool:
    """At most 253 characters of dot-separated labels (each label unbounded, as in Go)."""
    return 0 < len(text) <= 253 and all(_label_chars(part) for part in text.split("."))


def label_value(text: str) -> bool:
    if text == "":
        return True
    return (
        len(text) <= 63
        and all(_alnum(c) or c in "-_." for c in text)
        and _alnum(text[0])
        and _alnum(text[-1])
    )


def qualified_name(text: str) -> bool:
    prefix, slash, name = text.rpartition("/")
    if slash and not (dns_subdomain(prefix) and "/" not in prefix):
        return False
    return name != "" and label_value(name)


def secret_key(text: str) -> bool:
    return (
        0 < len(text) <= 253
        and all(_alnum(c) or c in "-._" for c in text)
        and text != "."
        and not text.startswith("..")
    )


_GO_SUFFIXES = ("Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "", "k", "M", "G", "T", "P", "E")


def quantity(text: str) -> bool:
    """Non-negative and parseable as Go's ``resource.ParseQuantity`` reads it: an optional sign,
    digits with at most one '.', then one suffix or an exponent. (The Python client's
    ``parse_quantity`` is laxer: it takes spaces, 'K' and '0E0E'; it decides the sign here.)"""
    body = text[1:] if text[:1] in ("+", "-") else text
    end = 0
    while end < len(body) and (body[end].isdigit() or body[end] == "."):
        end += 1
    number, suffix = body[:end], body[end:]
    if number.count(".") > 1 or not any(c.isdigit() for c in number):
        return False
    digits = suffix[2:] if suffix[1:2] in ("+", "-") else suffix[1:]
    exponent = suffix[:1] in ("e", "E") and digits.isdigit()
    if suffix not in _GO_SUFFIXES and not exponent:
        return False
    try:
        return parse_quantity(text) >= Decimal(0)
    except (ValueError, InvalidOperation):
        return False


def image(text: str) -> bool:
    return text != "" and text == text.strip()


# --- where each kind of field lives in a run, and where it lands in the Job ------------------


def _select(**fields: Any) -> dict[str, Any]:
    return {"stages": {"select": {"engine": "transformers", "gpus": 0, **fields}}}


def _container(job: dict[str, Any]) -> dict[str, Any]:
    return job["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]


FIELDS: dict[str, tuple[Callable[[str], dict[str, Any]], Callable[[str], bool]]] = {
    "memory": (lambda v: _select(memory=v), quantity),
    "cpu": (lambda v: _select(cpu=v), quantity),
    "service-account": (lambda v: {"worker": {"serviceAccountName": v}}, dns_subdomain),
    "priority-class": (lambda v: _select(priorityClassName=v), dns_subdomain),
    "pull-secret": (lambda v: {"worker": {"imagePullSecrets": [{"name": v}]}}, dns_subdomain),
    "queue": (lambda v: _select(queueName=v), lambda v: dns_subdomain(v) and len(v) <= 63),
    "node-selector-key": (lambda v: _select(nodeSelector={v: "x"}), qualified_name),
    "node-selector-value": (lambda v: _select(nodeSelector={"k": v}), label_value),
    "secret-key": (
        lambda v: {
            "storage": {
                "uri": "s3://bucket/runs",
                "s3": {
                    "accessKeyId": {"name": "creds", "key": v},
                    "secretAccessKey": {"name": "creds", "key": "secret"},
                },
            }
        },
        secret_key,
    ),
    "image": (lambda v: {"worker": {"image": v}}, image),
}


def document(spec: dict[str, Any]) -> dict[str, Any]:
    doc = base()
    doc["spec"].pop("stages")
    for key, value in spec.items():
        doc["spec"][key] = value
    return doc


def first_job(admitted: dict[str, Any]) -> dict[str, Any]:
    run = SelfTaughtRun.model_validate(admitted)
    run.metadata.setdefault("uid", "uid-1")
    result = plan(run, [], T0)
    assert result.creates, result.status.message
    return build_job(run, result.creates[0])


# --- strategies: the characters and shapes each grammar turns on ------------------------------

NAMES = st.one_of(
    st.text(alphabet=LOWER + "-.", max_size=12),
    st.text(alphabet=LOWER + "-._/ AZ", max_size=12),
    st.sampled_from(["", "a" * 63, "a" * 64, "a." * 127 + "a", "-a", "a-", "a..b", ".a"]),
)
QUANTITIES = st.one_of(
    st.builds(
        lambda sign, number, suffix: sign + number + suffix,
        st.sampled_from(["", "+", "-"]),
        st.from_regex(r"\A([0-9]{1,4}(\.[0-9]{0,3})?|\.[0-9]{1,3})\Z"),
        st.sampled_from([*_GO_SUFFIXES, "e3", "E-2", "Gii", "K", "mi", "i", " Gi", "e"]),
    ),
    st.text(alphabet="0123456789.+-eEGKMimn ", max_size=8),
)
KEYS = st.one_of(
    st.text(alphabet=string.ascii_letters + string.digits + "-._/ ", max_size=16),
    st.sampled_from(["example.com/gpu", "a/b/c", "/x", "x/", "a" * 254 + "/x", "."]),
)
IMAGES = st.one_of(st.text(max_size=12), st.sampled_from(["", " x", "x ", "a b", "r.io/a:1"]))

STRATEGY = {
    "memory": QUANTITIES,
    "cpu": QUANTITIES,
    "service-account": NAMES,
    "priority-class": NAMES,
    "pull-secret": NAMES,
    "queue": NAMES,
    "node-selector-key": KEYS,
    "node-selector-value": NAMES,
    "secret-key": KEYS,
    "image": IMAGES,
}


@pytest.mark.parametrize("kind", list(FIELDS))
def test_admission_refuses_what_kubernetes_would_refuse_in_the_job(kind: str) -> None:
    place, kubernetes_accepts = FIELDS[kind]

    @settings(max_examples=60, deadline=None, database=None)
    @given(STRATEGY[kind])
    def check(value: str) -> None:
        admission = admit(document(place(value)))
        if admission.allowed:
            assert kubernetes_accepts(value), f"admitted {value!r}, which Kubernetes refuses"
            job = first_job(admission.document)
            kubernetes_validate.validate(job, KUBE, strict=True)
        elif kind != "image":  # images: admission is stricter on purpose (no inner spaces)
            assert not kubernetes_accepts(value), (
                f"refused {value!r}, which Kubernetes accepts: {[str(e) for e in admission.errors]}"
            )

    check()


def test_an_admitted_quantity_reaches_the_job_unchanged() -> None:
    admission = admit(document(_select(memory="1536Mi", cpu=3)))
    assert admission.allowed
    resources = _container(first_job(admission.document))["resources"]
    assert resources["requests"]["memory"] == "1536Mi"
    assert resources["requests"]["cpu"] == "3"
