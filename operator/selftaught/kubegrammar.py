"""Kubernetes' own grammars for names, labels, keys and quantities, as CRD-ready patterns. Pure.

Every value of a SelfTaughtRun that ends up in a Job or pod (a Secret's name and key, a
priority class, a node selector, a quantity, ...) is checked at admission with the rule the API
server would apply to the Job, so a bad value is refused at ``kubectl apply`` instead of making
the Job create fail later. The rules come from k8s.io/apimachinery (``validation.IsDNS1123Label``,
``IsDNS1123Subdomain``, ``IsQualifiedName``, ``IsValidLabelValue``, ``IsConfigMapKey``) and
k8s.io/apimachinery's ``resource.Quantity`` grammar; the messages are theirs.

No maintained library we depend on ships these grammars as patterns: the ``kubernetes`` client
has a quantity parser (``kubernetes.utils.parse_quantity``, which the tests use as the oracle for
:data:`QUANTITY`) and ``kubernetes-validate``'s schemas carry no patterns. A CRD can only speak
OpenAPI ``pattern`` (RE2: no look-around) and portable CEL, so they are written here, once.
"""

from __future__ import annotations

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"

#: ``IsDNS1123Label``: Service, Namespace and (ours) SelfTaughtRun names; at most 63 characters.
DNS1123_LABEL = rf"^{_LABEL}$"
DNS1123_LABEL_MAX = 63
DNS1123_LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?'), at most 63 characters"
)

#: ``IsDNS1123Subdomain``: most object names (Secret, PVC, ServiceAccount, PriorityClass).
DNS1123_SUBDOMAIN = rf"^{_LABEL}(\.{_LABEL})*$"
DNS1123_SUBDOMAIN_MAX = 253
DNS1123_SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    r"for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)

#: ``IsValidLabelValue``: empty, or up to 63 characters of [A-Za-z0-9-_.] starting and ending
#: alphanumeric.
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
LABEL_VALUE_MAX = 63
LABEL_VALUE_MESSAGE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue', or 'my_value', "
    "or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?'), "
    "at most 63 characters"
)

#: ``IsQualifiedName`` (label and annotation keys, taint keys): an optional DNS-subdomain
#: prefix and '/', then a name of at most 63 characters. The prefix's 253-character cap is the
#: separate rule :data:`QUALIFIED_NAME_LONG_PREFIX` (RE2 cannot bound a repeated group's length).
QUALIFIED_NAME = rf"^({_LABEL}(\.{_LABEL})*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{{0,61}}[A-Za-z0-9])?$"
QUALIFIED_NAME_LONG_PREFIX = r"^[^/]{254,}/"
QUALIFIED_NAME_MESSAGE = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName', or 'my.name', or '123-abc'), at most 63 "
    "characters, with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
)

#: ``IsConfigMapKey`` (also Secret keys): [-._a-zA-Z0-9]+, not '.', not starting with '..'.
SECRET_KEY = r"^\.?[-_a-zA-Z0-9][-._a-zA-Z0-9]*$"
SECRET_KEY_MAX = 253
SECRET_KEY_MESSAGE = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. "
    "'key.name', or 'KEY_NAME', or 'key-name', regex used for validation is "
    "'[-._a-zA-Z0-9]+'), and must not be '.' or start with '..'"
)

#: A resource quantity as a pod's requests and limits accept it: ``resource.Quantity``'s
#: grammar (digits with an optional fraction; a binary-SI, decimal-SI or exponent suffix) without
#: a minus sign, since requests must be non-negative ("-0" is zero, so Kubernetes takes it).
#: "1.2.3Gi", "10Gii" and "-1Gi" do not match.
QUANTITY = (
    r"^(\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)|-(0+(\.0*)?|\.0+))"
    r"([KMGTPE]i|[numkMGTPE]|[eE][-+]?[0-9]+)?$"
)
QUANTITY_MESSAGE = (
    "must be a non-negative quantity: a number with an optional suffix (Ki, Mi, Gi, Ti, Pi, Ei, "
    "n, u, m, k, M, G, T, P, E, or an exponent like e3), e.g. '500m', '4', '16Gi'"
)

#: A container image reference as the pod API needs it: non-empty, no whitespace anywhere.
IMAGE = r"^[^\s]+$"
IMAGE_MESSAGE = "an image reference must be non-empty and contain no whitespace"

#: A path with no '.' or '..' segment (which could step out of where it is meant to point).
NO_DOT_SEGMENTS = r"(^|/)\.\.?(/|$)"

#: The API server's own words for each grammar, keyed by pattern: a refusal says the rule a
#: Kubernetes user knows ("a lowercase RFC 1123 subdomain must consist of ..."), not a regex.
EXPLAINED = {
    DNS1123_LABEL: DNS1123_LABEL_MESSAGE,
    DNS1123_SUBDOMAIN: DNS1123_SUBDOMAIN_MESSAGE,
    LABEL_VALUE: LABEL_VALUE_MESSAGE,
    QUALIFIED_NAME: QUALIFIED_NAME_MESSAGE,
    f"^$|{QUALIFIED_NAME}": QUALIFIED_NAME_MESSAGE,
    SECRET_KEY: SECRET_KEY_MESSAGE,
    QUANTITY: QUANTITY_MESSAGE,
    IMAGE: IMAGE_MESSAGE,
}
