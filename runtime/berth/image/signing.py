"""Image signatures ("simple signing", as containers/image and skopeo make them) and the trust
policy in the containers-policy.json format.

A signature is an OpenPGP binary signed message (made by gpg) over a small JSON payload that names
the manifest digest and the image reference. Signatures live in a lookaside directory as
`<repository path>@sha256=<hex>/signature-N`. They bind the manifest digest, which berth keeps
through save, load, push and pull, so re-assembling a tarball cannot break them.

Verification checks the OpenPGP signature first (gpg, against a keyring built only from the
policy's keys) and parses the payload only after that; cleartext and armored input, unknown
critical members, expired or revoked keys, another digest or another identity are all refused.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable

from berth.errors import BerthError, InvalidInput

SIGNATURE_TYPE = "atomic container signature"
IDENTITY_TYPES = ("matchRepoDigestOrExact", "matchExact", "matchRepository", "exactReference", "exactRepository",
                  "remapIdentity")


class SignatureRefused(BerthError):
    """An image does not satisfy the trust policy."""


# ------------------------------------------------------------------------------ references
def normalize(ref: str) -> str:
    """The fully qualified form containers/image compares: docker.io/library/busybox:latest."""
    from berth.image import reference

    r = reference.parse(ref)
    first, _, rest = r.name.partition("/")
    name = r.name
    if not rest:
        name = f"docker.io/library/{r.name}"
    elif not ("." in first or ":" in first or first == "localhost"):
        name = f"docker.io/{r.name}"
    out = name
    if r.tag and not r.digest:
        out += f":{r.tag}"
    if r.digest:
        out += f"@{r.digest}"
    return out


def _repo_of(normalized: str) -> str:
    """docker.io/library/busybox:latest -> docker.io/library/busybox."""
    head, _, last = normalized.rpartition("/")
    last = last.split("@")[0].split(":")[0]
    return f"{head}/{last}" if head else last


def _path_in_lookaside(normalized: str) -> str:
    """Repository path without the registry host (the lookaside layout)."""
    repo = _repo_of(normalized)
    _host, _, path = repo.partition("/")
    return path


# ------------------------------------------------------------------------------ gpg
def _gpg(args: list[str], home: str | None, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    if not shutil.which("gpg"):
        raise BerthError("gpg is not installed (apt-get install gnupg)")
    argv = ["gpg", "--batch", "--no-tty", "--quiet"]
    if home:
        argv += ["--homedir", home]
    return subprocess.run(argv + args, input=data, stdin=subprocess.DEVNULL if data is None else None,
                          capture_output=True, check=False)


def sign_payload(payload: bytes, fingerprint: str, gpg_home: str | None) -> bytes:
    cp = _gpg(["--local-user", fingerprint, "--sign", "--output", "-"], gpg_home, payload)
    if cp.returncode != 0 or not cp.stdout:
        last = cp.stderr.decode(errors="replace").strip().splitlines()
        raise BerthError(f"gpg could not sign with {fingerprint}: {last[-1] if last else 'no output'}")
    return cp.stdout


def _verify_blob(sig: bytes, keys: list[bytes]) -> tuple[bytes, str]:
    """(payload, signer fingerprint) if sig is a good binary signed message by one of keys."""
    if sig.lstrip().startswith(b"-----BEGIN"):
        raise SignatureRefused("signature is ASCII-armored or cleartext; only binary signed messages are accepted")
    with tempfile.TemporaryDirectory(prefix="berth-gpg-") as home:
        os.chmod(home, 0o700)
        for k in keys:
            cp = _gpg(["--import"], home, k)
            if cp.returncode != 0:
                raise InvalidInput("a trust policy key could not be imported: "
                                   f"{cp.stderr.decode(errors='replace').strip()[-200:]}")
        sigfile = os.path.join(home, "sig")
        status = os.path.join(home, "status")
        with open(sigfile, "wb") as f:
            f.write(sig)
        cp = _gpg(["--status-file", status, "--trust-model", "always", "--output", "-", "--decrypt", sigfile], home)
        with open(status, encoding="utf-8", errors="replace") as f:
            lines = [ln.split() for ln in f.read().splitlines() if ln.startswith("[GNUPG:]")]
    codes = {ln[1]: ln[2:] for ln in lines if len(ln) > 1}
    for bad, why in (("EXPKEYSIG", "the signing key has expired"), ("REVKEYSIG", "the signing key is revoked"),
                     ("EXPSIG", "the signature has expired"), ("BADSIG", "the signature does not verify"),
                     ("NO_PUBKEY", "signed by a key the policy does not trust"),
                     ("ERRSIG", "signed by a key the policy does not trust")):
        if bad in codes:
            raise SignatureRefused(why)
    if "PLAINTEXT" in codes and codes["PLAINTEXT"] and codes["PLAINTEXT"][0] == "74":
        raise SignatureRefused("signature is a cleartext/text-mode message; only binary signed messages are accepted")
    if cp.returncode != 0 or "VALIDSIG" not in codes or "GOODSIG" not in codes:
        raise SignatureRefused("signature is not a valid OpenPGP signed message")
    return cp.stdout, codes["VALIDSIG"][0]


def parse_payload(payload: bytes) -> tuple[str, str]:
    """(manifest digest, docker reference) from a verified payload, strictly."""
    try:
        doc = json.loads(payload)
    except ValueError:
        raise SignatureRefused("signature payload is not JSON") from None
    if not isinstance(doc, dict) or set(doc) - {"critical", "optional"} or "critical" not in doc:
        raise SignatureRefused("signature payload has unknown top-level members")
    crit = doc["critical"]
    if not isinstance(crit, dict) or set(crit) != {"type", "image", "identity"}:
        raise SignatureRefused("signature has unknown or missing critical members")
    if crit["type"] != SIGNATURE_TYPE:
        raise SignatureRefused(f"signature type is {crit['type']!r}, not {SIGNATURE_TYPE!r}")
    image, identity = crit["image"], crit["identity"]
    if not isinstance(image, dict) or set(image) != {"docker-manifest-digest"} or \
            not isinstance(identity, dict) or set(identity) != {"docker-reference"}:
        raise SignatureRefused("signature has unknown or missing critical members")
    opt = doc.get("optional", {})
    if not isinstance(opt, dict) or ("timestamp" in opt and not isinstance(opt["timestamp"], int)):
        raise SignatureRefused("signature timestamp must be an integer")
    return str(image["docker-manifest-digest"]), str(identity["docker-reference"])


def make_payload(manifest_digest: str, docker_reference: str) -> bytes:
    from berth import __name__ as _pkg

    return json.dumps({"critical": {"type": SIGNATURE_TYPE, "image": {"docker-manifest-digest": manifest_digest},
                                    "identity": {"docker-reference": docker_reference}},
                       "optional": {"creator": f"{_pkg} 0.1.0", "timestamp": int(time.time())}}).encode()


# ------------------------------------------------------------------------------ lookaside
class Lookaside:
    """A signature store: a local directory (read and write) or an http(s) URL (read only)."""

    def __init__(self, base: str) -> None:
        self.remote = base.startswith(("http://", "https://"))
        self.base = base.rstrip("/") if self.remote else base

    def dir_for(self, normalized: str, digest: str) -> str:
        algo, _, hexd = digest.partition(":")
        if algo != "sha256" or not re.fullmatch(r"[0-9a-f]{64}", hexd):
            raise InvalidInput(f"invalid manifest digest {digest!r}")
        rel = _path_in_lookaside(normalized) + f"@{algo}={hexd}"
        return f"{self.base}/{rel}" if self.remote else os.path.join(self.base, rel)

    def _fetch(self, url: str) -> bytes | None:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(url, timeout=30) as r:  # noqa: S310 - the operator's lookaside URL
                return r.read(1 << 20)
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise BerthError(f"signature store {self.base}: {url} answered {e.code}") from None
        except OSError as e:
            raise BerthError(f"signature store {self.base} cannot be read: {e}") from None

    def signatures(self, normalized: str, digest: str) -> list[bytes]:
        d = self.dir_for(normalized, digest)
        out = []
        n = 1
        while True:
            if self.remote:
                data = self._fetch(f"{d}/signature-{n}")
                if data is None:
                    break
                out.append(data)
            else:
                if not os.path.exists(os.path.join(d, f"signature-{n}")):
                    break
                with open(os.path.join(d, f"signature-{n}"), "rb") as f:
                    out.append(f.read())
            n += 1
        return out

    def has_signatures(self, normalized: str) -> bool:
        """Whether any image of this repository has signatures here (a local store only)."""
        if self.remote:
            return False
        parent, _, name = _path_in_lookaside(normalized).rpartition("/")
        d = os.path.join(self.base, parent)
        return os.path.isdir(d) and any(n.startswith(name + "@") for n in os.listdir(d))

    def export(self, normalized: str, digest: str) -> list[tuple[str, bytes]]:
        """The signatures of an image as (path relative to the store, content)."""
        rel = os.path.relpath(self.dir_for(normalized, digest), self.base)
        return [(f"{rel}/signature-{i}", sig) for i, sig in enumerate(self.signatures(normalized, digest), 1)]

    def add(self, normalized: str, digest: str, sig: bytes) -> str:
        if self.remote:
            raise InvalidInput(f"signature store {self.base} is served over http and is read-only here; "
                               "sign into a local --sigstore and publish that directory")
        return self._keep(self.dir_for(normalized, digest), sig)

    def import_signature(self, rel_dir: list[str], sig: bytes) -> str:
        """Keep a signature another store exported (rel_dir: its directory, checked by the caller)."""
        return self._keep(os.path.join(self.base, *rel_dir), sig)

    @staticmethod
    def _keep(d: str, sig: bytes) -> str:
        """Store sig under the next free signature-N of d, unless an identical one is there."""
        from berth.storage.fsutil import atomic_write

        os.makedirs(d, exist_ok=True)
        n = 1
        while os.path.exists(os.path.join(d, f"signature-{n}")):
            with open(os.path.join(d, f"signature-{n}"), "rb") as f:
                if f.read() == sig:
                    return os.path.join(d, f"signature-{n}")
            n += 1
        path = os.path.join(d, f"signature-{n}")
        atomic_write(path, sig)
        return path


# ------------------------------------------------------------------------------ policy
class Policy:
    """containers-policy.json: default, transports.<name>.<scope>, most specific scope wins."""

    def __init__(self, doc: object, source: str) -> None:
        self.source = source
        if not isinstance(doc, dict) or set(doc) - {"default", "transports"}:
            raise InvalidInput(f"{source}: a policy has only 'default' and 'transports'")
        if "default" not in doc:
            raise InvalidInput(f"{source}: 'default' is mandatory")
        self.default = self._reqs(doc["default"], "default")
        self.transports: dict[str, dict[str, list[dict[str, object]]]] = {}
        for t, scopes in (doc.get("transports") or {}).items():
            if not isinstance(scopes, dict):
                raise InvalidInput(f"{source}: transports.{t} must map scopes to requirement lists")
            self.transports[t] = {s: self._reqs(r, f"transports.{t}.{s!r}") for s, r in scopes.items()}

    def _reqs(self, reqs: object, where: str) -> list[dict[str, object]]:
        if not isinstance(reqs, list) or not reqs:
            raise InvalidInput(f"{self.source}: {where} must be a non-empty list of requirements")
        for r in reqs:
            self._check(r, where)
        return reqs  # type: ignore[return-value]

    def _check(self, r: object, where: str) -> None:
        if not isinstance(r, dict) or "type" not in r:
            raise InvalidInput(f"{self.source}: {where}: every requirement needs a type")
        t = r["type"]
        allowed = {"insecureAcceptAnything": {"type"}, "reject": {"type"},
                   "signedBy": {"type", "keyType", "keyPath", "keyPaths", "keyData", "signedIdentity"}}
        if t not in allowed:
            raise InvalidInput(f"{self.source}: {where}: unsupported requirement type {t!r} "
                               "(insecureAcceptAnything, reject, signedBy)")
        extra = set(r) - allowed[t]
        if extra:
            raise InvalidInput(f"{self.source}: {where}: unknown field(s) {', '.join(sorted(extra))} in {t}")
        if t == "signedBy":
            if r.get("keyType") != "GPGKeys":
                raise InvalidInput(f"{self.source}: {where}: signedBy needs keyType GPGKeys")
            if sum(k in r for k in ("keyPath", "keyPaths", "keyData")) != 1:
                raise InvalidInput(f"{self.source}: {where}: signedBy needs exactly one of keyPath, keyPaths, keyData")
            ident = r.get("signedIdentity", {"type": "matchRepoDigestOrExact"})
            if not isinstance(ident, dict) or ident.get("type") not in IDENTITY_TYPES:
                raise InvalidInput(f"{self.source}: {where}: signedIdentity type must be one of "
                                   f"{', '.join(IDENTITY_TYPES)}")
            fields = {"matchRepoDigestOrExact": set(), "matchExact": set(), "matchRepository": set(),
                      "exactReference": {"dockerReference"}, "exactRepository": {"dockerRepository"},
                      "remapIdentity": {"prefix", "signedPrefix"}}[str(ident["type"])]
            if set(ident) - {"type"} != fields:
                raise InvalidInput(f"{self.source}: {where}: signedIdentity {ident['type']} takes "
                                   f"{', '.join(sorted(fields)) or 'no other fields'}")

    def requirements(self, transport: str, normalized: str) -> list[dict[str, object]]:
        scopes = self.transports.get(transport, {})
        repo = _repo_of(normalized)
        candidates = [normalized.split("@")[0], repo]
        parts = repo.split("/")
        for i in range(len(parts) - 1, 0, -1):
            candidates.append("/".join(parts[:i]))
        for c in candidates:
            if c in scopes:
                return scopes[c]
        if "" in scopes:
            return scopes[""]
        return self.default

    def describe(self) -> dict[str, object]:
        return {"source": self.source, "default": self.default, "transports": self.transports}


def load_policy(path: str | None) -> Policy:
    """The policy at path (or $BERTH_POLICY, /etc/berth/policy.json, /etc/containers/policy.json);
    without any, every image is accepted (insecureAcceptAnything), as the containers default."""
    candidates = [path] if path else [os.environ.get("BERTH_POLICY"), "/etc/berth/policy.json",
                                      "/etc/containers/policy.json"]
    for p in candidates:
        if not p:
            continue
        if not os.path.exists(p):
            if path:
                raise InvalidInput(f"policy file {path} does not exist")
            continue
        try:
            with open(p, encoding="utf-8") as f:
                doc = json.load(f)
        except ValueError as e:
            raise InvalidInput(f"{p}: not valid JSON ({e}); nothing runs until it is fixed") from None
        return Policy(doc, p)
    return Policy({"default": [{"type": "insecureAcceptAnything"}]}, "built-in default")


def _keys(req: dict[str, object], policy_dir: str) -> list[bytes]:
    if "keyData" in req:
        return [base64.b64decode(str(req["keyData"]))]
    paths = [req["keyPath"]] if "keyPath" in req else list(req["keyPaths"])  # type: ignore[arg-type]
    out = []
    for p in paths:
        full = p if os.path.isabs(str(p)) else os.path.join(policy_dir, str(p))
        try:
            with open(full, "rb") as f:
                out.append(f.read())
        except OSError:
            raise InvalidInput(f"policy key file {full} cannot be read") from None
    return out


def _identity_ok(req: dict[str, object], image_ref: str, signed_ref: str) -> bool:
    ident = req.get("signedIdentity") or {"type": "matchRepoDigestOrExact"}
    t = ident["type"]  # type: ignore[index]
    try:
        signed = normalize(signed_ref)
    except InvalidInput:
        return False
    if t == "matchExact":
        return "@" not in image_ref and signed == image_ref
    if t == "matchRepoDigestOrExact":
        return _repo_of(signed) == _repo_of(image_ref) if "@" in image_ref else signed == image_ref
    if t == "matchRepository":
        return _repo_of(signed) == _repo_of(image_ref)
    if t == "exactReference":
        return signed == normalize(str(ident["dockerReference"]))  # type: ignore[index]
    if t == "exactRepository":
        return _repo_of(signed) == _repo_of(normalize(str(ident["dockerRepository"]) + ":x"))  # type: ignore[index]
    if t == "remapIdentity":
        prefix, signed_prefix = str(ident["prefix"]), str(ident["signedPrefix"])  # type: ignore[index]
        remapped = signed_prefix + image_ref[len(prefix):] if image_ref.startswith(prefix) else image_ref
        return signed == remapped
    return False


def evaluate(policy: Policy, image_ref: str, manifest_digest: str, signatures: list[bytes],
             transport: str = "docker") -> dict[str, object]:
    """Whether an image (by reference and manifest digest) is accepted; raises SignatureRefused."""
    normalized = normalize(image_ref)
    reqs = policy.requirements(transport, normalized)
    results = []
    for req in reqs:
        t = req["type"]
        if t == "insecureAcceptAnything":
            results.append({"requirement": t, "accepted": True})
            continue
        if t == "reject":
            raise SignatureRefused(f"{image_ref}: the trust policy ({policy.source}) rejects it")
        keys = _keys(req, os.path.dirname(policy.source) if os.path.isabs(policy.source) else ".")
        if not signatures:
            raise SignatureRefused(f"{image_ref}: the trust policy requires a signature and the image has none")
        reasons = []
        accepted = None
        for sig in signatures:
            try:
                payload, fpr = _verify_blob(sig, keys)
                digest, signed_ref = parse_payload(payload)
                if digest != manifest_digest:
                    raise SignatureRefused(f"signature is for manifest {digest}, not {manifest_digest}")
                if not _identity_ok(req, normalized, signed_ref):
                    raise SignatureRefused(f"signature is for {signed_ref}, not {normalized}")
                accepted = {"requirement": t, "accepted": True, "signer": fpr, "identity": signed_ref}
                break
            except SignatureRefused as e:
                reasons.append(str(e))
        if accepted is None:
            raise SignatureRefused(f"{image_ref}: no acceptable signature ({'; '.join(reasons)})")
        results.append(accepted)
    return {"reference": normalized, "manifest_digest": manifest_digest, "accepted": True, "checks": results}


# ------------------------------------------------------------------------------ trust
class Trust:
    """The trust policy (read when first needed: a broken policy file fails the operation that
    consults it) and the signature store it is checked against."""

    def __init__(self, policy_path: str | None, sigstore: str) -> None:
        self.policy_path = policy_path
        self.lookaside = Lookaside(sigstore)
        self._policy: Policy | None = None

    @property
    def policy(self) -> Policy:
        if self._policy is None:
            self._policy = load_policy(self.policy_path)
        return self._policy

    def accepts_unsigned(self, normalized: str) -> bool:
        """Whether the policy lets this name in without looking at signatures."""
        return all(r["type"] == "insecureAcceptAnything" for r in self.policy.requirements("docker", normalized))


def sign(trust: Trust, ref: str, digest: str, fingerprint: str, gpg_home: str | None) -> str:
    """Sign an image's manifest digest under its name; returns the signature's path."""
    identity = normalize(ref)
    sig = sign_payload(make_payload(digest, identity), fingerprint, gpg_home)
    return trust.lookaside.add(identity, digest, sig)


def verify(trust: Trust, ref: str, digest: str) -> dict[str, object]:
    normalized = normalize(ref)
    sigs = trust.lookaside.signatures(normalized, digest)
    return evaluate(trust.policy, normalized, digest, sigs)


def check_image(trust: Trust, ref: str, tags: list[str], by_id: bool, digest: Callable[[], str]) -> None:
    """Enforce the trust policy for an image about to be used (ref resolved to an image with these
    tags and the manifest digest digest()). An image given by ID is checked under its names (one
    acceptable name suffices); an untagged one only passes a policy that accepts anything by
    default."""
    policy = trust.policy
    names = list(tags) if by_id else [ref]
    if not names:
        if all(r["type"] == "insecureAcceptAnything" for r in policy.default):
            return
        raise SignatureRefused(f"{ref}: an untagged image cannot be checked against the trust policy")
    errors = []
    for name in names:
        if trust.accepts_unsigned(normalize(name)):
            return
        try:
            verify(trust, name, digest())
            return
        except SignatureRefused as e:
            errors.append(str(e))
    raise SignatureRefused(errors[0] if len(errors) == 1 else "; ".join(errors))
