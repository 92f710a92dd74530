"""Trust policy parsing, scope matching, identity rules and strict payload parsing."""

from __future__ import annotations

import json

import pytest

from berth.errors import InvalidInput
from berth.image.signing import Policy, SignatureRefused, _identity_ok, make_payload, normalize, parse_payload

KEY = {"type": "signedBy", "keyType": "GPGKeys", "keyData": "AAAA"}


def test_normalize() -> None:
    assert normalize("busybox") == "docker.io/library/busybox:latest"
    assert normalize("team/app:v1") == "docker.io/team/app:v1"
    assert normalize("127.0.0.1:5000/team/app:v1") == "127.0.0.1:5000/team/app:v1"


def test_most_specific_scope_wins() -> None:
    p = Policy({"default": [{"type": "reject"}], "transports": {"docker": {
        "": [{"type": "insecureAcceptAnything"}],
        "reg.example": [KEY],
        "reg.example/team": [{"type": "reject"}],
        "reg.example/team/app:v1": [{"type": "insecureAcceptAnything"}]}}}, "test")
    assert p.requirements("docker", "other.example/x:1")[0]["type"] == "insecureAcceptAnything"
    assert p.requirements("docker", "reg.example/other/x:1")[0]["type"] == "signedBy"
    assert p.requirements("docker", "reg.example/team/app:v2")[0]["type"] == "reject"
    assert p.requirements("docker", "reg.example/team/app:v1")[0]["type"] == "insecureAcceptAnything"
    assert p.requirements("oci", "reg.example/team/app:v1")[0]["type"] == "reject"


@pytest.mark.parametrize("doc", [
    {},
    {"default": []},
    {"default": [{"type": "insecureAcceptAnything"}], "extra": 1},
    {"default": [{"type": "signedBy", "keyType": "GPGKeys"}]},
    {"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "a", "keyData": "b"}]},
    {"default": [{"type": "signedBy", "keyType": "X509", "keyPath": "a"}]},
    {"default": [dict(KEY, signedIdentity={"type": "exactReference"})]},
    {"default": [dict(KEY, signedIdentity={"type": "nonsense"})]},
    {"default": [{"type": "sigstoreSigned"}]},
])
def test_invalid_policies(doc: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        Policy(doc, "test")


def test_identity_rules() -> None:
    img = "reg.example/team/app:v1"
    assert _identity_ok({}, img, "reg.example/team/app:v1")
    assert not _identity_ok({}, img, "reg.example/team/app:v2")
    assert _identity_ok({}, "reg.example/team/app@sha256:" + "a" * 64, "reg.example/team/app:v9")
    assert _identity_ok({"signedIdentity": {"type": "matchRepository"}}, img, "reg.example/team/app:v2")
    assert not _identity_ok({"signedIdentity": {"type": "matchRepository"}}, img, "reg.example/team/other:v1")
    assert _identity_ok({"signedIdentity": {"type": "exactRepository", "dockerRepository": "reg.example/x/y"}},
                        img, "reg.example/x/y:anything")
    assert _identity_ok({"signedIdentity": {"type": "exactReference", "dockerReference": "reg.example/x/y:1"}},
                        img, "reg.example/x/y:1")
    assert _identity_ok({"signedIdentity": {"type": "remapIdentity", "prefix": "mirror.example",
                                            "signedPrefix": "reg.example"}},
                        "mirror.example/team/app:v1", "reg.example/team/app:v1")


def test_payload_strict() -> None:
    digest = "sha256:" + "b" * 64
    good = make_payload(digest, "reg.example/team/app:v1")
    assert parse_payload(good) == (digest, "reg.example/team/app:v1")
    doc = json.loads(good)
    doc["critical"]["surprise"] = 1
    with pytest.raises(SignatureRefused):
        parse_payload(json.dumps(doc).encode())
    doc = json.loads(good)
    doc["critical"]["type"] = "something else"
    with pytest.raises(SignatureRefused):
        parse_payload(json.dumps(doc).encode())
    doc = json.loads(good)
    doc["optional"]["timestamp"] = 1.5
    with pytest.raises(SignatureRefused):
        parse_payload(json.dumps(doc).encode())
    doc = json.loads(good)
    doc["optional"]["anything"] = "is fine"
    assert parse_payload(json.dumps(doc).encode())[0] == digest
    with pytest.raises(SignatureRefused):
        parse_payload(b"not json")
