"""Decoding the Kubernetes protobuf request bodies kubectl sends for built-in kinds.

``kubectl create secret generic``, ``create configmap`` and ``create namespace`` go through
client-go's typed clients, which send ``application/vnd.kubernetes.protobuf`` and do not fall back
to JSON on a 415: a server that only reads JSON answers them "the body of the request could not
be decoded". A real API server decodes protobuf for every built-in kind; this module decodes the
kinds those ``kubectl create`` subcommands send (Secret, ConfigMap, Namespace, ServiceAccount),
from the field numbers in k8s.io/api's ``generated.proto``, into the JSON shape the store keeps.
Anything else gets a clear 415 naming the kind.

Envelope: the 4 magic bytes ``k8s\\0``, then a ``runtime.Unknown`` (1: typeMeta {1: apiVersion,
2: kind}, 2: raw, 3: contentEncoding, 4: contentType); ``raw`` is the object's own message.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

MAGIC = b"k8s\x00"

#: A field decoder: raw wire value -> JSON value.
Decoder = Callable[[Any], Any]


class ProtobufError(ValueError):
    """A body that is not a protobuf object this emulator can decode."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def fields(data: bytes) -> Iterator[tuple[int, Any]]:
    """(field number, value) pairs: an int for varints, bytes for length-delimited fields."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            size, pos = _varint(data, pos)
            value, pos = data[pos : pos + size], pos + size
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise ProtobufError(f"unsupported wire type {wire} for field {number}")
        yield number, value


def _text(raw: bytes) -> str:
    return raw.decode("utf-8")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _map(value: Decoder) -> Decoder:
    def decode(raw: bytes) -> tuple[str, Any]:
        entry = dict(fields(raw))
        return _text(entry.get(1, b"")), value(entry.get(2, b""))

    return decode


def _message(schema: dict[int, tuple[str, Decoder, str]]) -> Decoder:
    """A message decoder; schema maps field number -> (json name, decoder, "one"|"list"|"map")."""

    def decode(raw: bytes) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for number, value in fields(raw):
            if number not in schema:
                continue  # fields the emulator does not keep (status, managedFields, ...)
            name, decoder, shape = schema[number]
            if shape == "list":
                out.setdefault(name, []).append(decoder(value))
            elif shape == "map":
                key, item = decoder(value)
                out.setdefault(name, {})[key] = item
            else:
                out[name] = decoder(value)
        # proto3 writes zero values that JSON omits (an empty ``type``): drop them, so the
        # server's defaulting (a Secret's ``type: Opaque``) applies as for a JSON body
        return {k: v for k, v in out.items() if v != ""}

    return decode


_OWNER = _message(
    {
        1: ("kind", _text, "one"),
        3: ("name", _text, "one"),
        4: ("uid", _text, "one"),
        5: ("apiVersion", _text, "one"),
        6: ("controller", bool, "one"),
        7: ("blockOwnerDeletion", bool, "one"),
    }
)
_META = _message(
    {
        1: ("name", _text, "one"),
        2: ("generateName", _text, "one"),
        3: ("namespace", _text, "one"),
        11: ("labels", _map(_text), "map"),
        12: ("annotations", _map(_text), "map"),
        13: ("ownerReferences", _OWNER, "list"),
        14: ("finalizers", _text, "list"),
    }
)
_REF = _message({1: ("name", _text, "one")})

#: kind -> decoder of its message, per k8s.io/api/core/v1/generated.proto.
KINDS: dict[str, Decoder] = {
    "Secret": _message(
        {
            1: ("metadata", _META, "one"),
            2: ("data", _map(_b64), "map"),
            3: ("type", _text, "one"),
            4: ("stringData", _map(_text), "map"),
            5: ("immutable", bool, "one"),
        }
    ),
    "ConfigMap": _message(
        {
            1: ("metadata", _META, "one"),
            2: ("data", _map(_text), "map"),
            3: ("binaryData", _map(_b64), "map"),
            4: ("immutable", bool, "one"),
        }
    ),
    "Namespace": _message({1: ("metadata", _META, "one")}),
    "ServiceAccount": _message(
        {
            1: ("metadata", _META, "one"),
            3: ("imagePullSecrets", _REF, "list"),
            4: ("automountServiceAccountToken", bool, "one"),
        }
    ),
}


def decode(body: bytes) -> dict[str, Any]:
    """The JSON object a protobuf request body carries; ProtobufError for anything else."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf magic prefix")
    unknown = dict(fields(body[len(MAGIC) :]))
    type_meta = dict(fields(unknown.get(1, b"")))
    api_version, kind = _text(type_meta.get(1, b"")), _text(type_meta.get(2, b""))
    decoder = KINDS.get(kind)
    if decoder is None:
        raise ProtobufError(
            f"the emulator decodes protobuf only for {', '.join(sorted(KINDS))}, not {kind!r};"
            " send JSON (kubectl apply -f)"
        )
    obj: dict[str, Any] = decoder(unknown.get(2, b""))
    return {"apiVersion": api_version, "kind": kind, **obj}
