"""Object-meta rules of kube-apiserver: names, generateName, labels and annotations.

A real API server refuses a Job named ``Bad_Name``, a Pod whose label value has a space, or a
Namespace with a dot, with a 422 naming the field. Without the same rules the emulator would
admit what a cluster refuses, and tests would pass on objects no cluster could hold. The rules
follow k8s.io/apimachinery's ``ValidateObjectMeta`` (the grammars come from the product's own
:mod:`selftaught.kubegrammar`, which the CRD uses too):

- names are DNS-1123 subdomains (at most 253 characters) for most kinds; Namespaces are DNS-1123
  labels, Services DNS-1035 labels (a letter first); Jobs are also capped at 63 characters,
  since their name becomes the ``job-name`` label of their pods;
- ``generateName`` is a name prefix: cut to 58 characters, then 5 random characters appended;
- label keys are qualified names and values label values; annotation keys are qualified names
  and all annotations together at most 256 KiB.
"""

from __future__ import annotations

import re
from typing import Any

from selftaught import kubegrammar as k8s
from selftaught.validation import FieldError

#: kube-apiserver cuts a generateName prefix to this many characters before adding 5 random.
MAX_GENERATED_PREFIX = 58
#: All of an object's annotations together (keys and values), in bytes.
MAX_ANNOTATIONS = 256 * 1024

_DNS1035_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
_DNS1035_MESSAGE = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)

#: (pattern, message, max length) of names, by (group, plural); anything else: a subdomain.
_NAME_RULES: dict[tuple[str, str], tuple[str, str, int]] = {
    ("", "namespaces"): (k8s.DNS1123_LABEL, k8s.DNS1123_LABEL_MESSAGE, 63),
    ("", "services"): (_DNS1035_LABEL, _DNS1035_MESSAGE, 63),
    ("batch", "jobs"): (k8s.DNS1123_SUBDOMAIN, k8s.DNS1123_SUBDOMAIN_MESSAGE, 63),
}
_SUBDOMAIN = (k8s.DNS1123_SUBDOMAIN, k8s.DNS1123_SUBDOMAIN_MESSAGE, k8s.DNS1123_SUBDOMAIN_MAX)


def _show(value: str) -> str:
    return '"' + value.replace('"', '\\"') + '"'


def generated_name(prefix: str, suffix: str) -> str:
    """The name kube-apiserver makes from ``generateName`` (prefix cut to fit, then 5 chars)."""
    return prefix[:MAX_GENERATED_PREFIX] + suffix


def name_errors(group_plural: tuple[str, str], name: Any) -> list[FieldError]:
    """What is wrong with ``name`` for objects of this type ([] when it is valid)."""
    pattern, message, limit = _NAME_RULES.get(group_plural, _SUBDOMAIN)
    if not isinstance(name, str) or not name:
        return [
            FieldError(
                "metadata.name",
                "Required value: name or generateName is required",
                "FieldValueRequired",
            )
        ]
    errors = []
    if len(name) > limit:
        errors.append(
            FieldError(
                "metadata.name",
                f"Invalid value: {_show(name)}: must be no more than {limit} characters",
                value=name,
            )
        )
    if not re.match(pattern, name):
        errors.append(
            FieldError("metadata.name", f"Invalid value: {_show(name)}: {message}", value=name)
        )
    return errors


def _key_errors(path: str, key: str) -> list[FieldError]:
    if re.match(k8s.QUALIFIED_NAME, key) and not re.match(k8s.QUALIFIED_NAME_LONG_PREFIX, key):
        return []
    return [
        FieldError(path, f"Invalid value: {_show(key)}: {k8s.QUALIFIED_NAME_MESSAGE}", value=key)
    ]


def labels_errors(labels: Any) -> list[FieldError]:
    if not isinstance(labels, dict):
        return []
    errors = []
    for key, value in labels.items():
        errors += _key_errors("metadata.labels", str(key))
        text = value if isinstance(value, str) else str(value)
        if len(text) > k8s.LABEL_VALUE_MAX or not re.match(k8s.LABEL_VALUE, text):
            errors.append(
                FieldError(
                    "metadata.labels",
                    f"Invalid value: {_show(text)}: {k8s.LABEL_VALUE_MESSAGE}",
                    value=text,
                )
            )
    return errors


def annotations_errors(annotations: Any) -> list[FieldError]:
    if not isinstance(annotations, dict):
        return []
    errors = []
    for key in annotations:
        errors += _key_errors("metadata.annotations", str(key).lower())
    size = sum(len(str(k)) + len(str(v)) for k, v in annotations.items())
    if size > MAX_ANNOTATIONS:
        errors.append(
            FieldError(
                "metadata.annotations",
                f"Too long: must have at most {MAX_ANNOTATIONS} bytes",
                "FieldValueTooLong",
            )
        )
    return errors


def object_meta_errors(
    group_plural: tuple[str, str], meta: dict[str, Any], *, creating: bool
) -> list[FieldError]:
    """Every object-meta problem of one write; names are only checked when they are set."""
    errors = name_errors(group_plural, meta.get("name")) if creating else []
    return errors + labels_errors(meta.get("labels")) + annotations_errors(meta.get("annotations"))
