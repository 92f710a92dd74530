"""A small client for the OCI distribution API (HTTP only: requests, auth, retries)."""

from __future__ import annotations

import base64
import json
import os
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import BinaryIO

from berth.errors import BerthError, InvalidInput, NotFound
from berth.record import Factory, Record

RETRIES = 4
BACKOFF = 0.2
TIMEOUT = 60


class RegistryError(BerthError):
    pass


class Registries(Record):
    """The registry settings of berth's config file: where a reference without a registry host goes,
    which registries speak plain http, and the credentials file `berth login` writes."""

    default: str | None = None
    insecure: list[str] = Factory(list)
    auth_file: str | None = None


def split_reference(ref: str, default: str | None = None) -> tuple[str, str, str]:
    """(registry host, repository, tag or digest) of a reference like host:5000/team/app:v1; a
    reference without a registry host goes to the default registry (busybox → DEFAULT/library/busybox)."""
    from berth.image import reference

    r = reference.parse(ref)
    first, _, rest = r.name.partition("/")
    if not rest or not ("." in first or ":" in first or first == "localhost"):
        if not default:
            raise InvalidInput(f"{ref!r} names no registry: use HOST[:PORT]/REPOSITORY[:TAG], or set "
                               "default_registry in berth's config file")
        first, rest = default, r.name if rest else f"library/{r.name}"
    return first, rest, r.digest or r.tag or "latest"


def qualified(ref: str, default: str | None) -> str:
    """The reference with its registry host (the default registry's when it names none)."""
    host, repo, tag = split_reference(ref, default)
    return f"{host}/{repo}{'@' if tag.startswith('sha256:') else ':'}{tag}"


def load_auth(registry: str, authfile: str | None, own: str | None = None) -> tuple[str, str] | None:
    """Credentials for a registry from a docker config.json style file (auths.<host>.auth): the
    given one, else REGISTRY_AUTH_FILE, berth's own (`own`, written by berth login), ~/.docker/config.json."""
    candidates = [authfile] if authfile else [os.environ.get("REGISTRY_AUTH_FILE"), own,
                                              os.path.expanduser("~/.docker/config.json")]
    for path in candidates:
        if not path or not os.path.exists(path):
            if authfile:
                raise InvalidInput(f"auth file {authfile} does not exist")
            continue
        try:
            with open(path, encoding="utf-8") as f:
                auths = json.load(f).get("auths", {})
        except (OSError, ValueError):
            raise InvalidInput(f"auth file {path} is not valid JSON in the docker config.json format") from None
        for key, entry in auths.items():
            host = re.sub(r"^https?://", "", key).split("/")[0]
            if host == registry and isinstance(entry, dict) and entry.get("auth"):
                try:
                    user, _, password = base64.b64decode(str(entry["auth"]), validate=True).decode().partition(":")
                except (ValueError, UnicodeDecodeError):
                    raise InvalidInput(f"auth file {path}: the auth of {key} is not base64 of USER:PASSWORD") from None
                return user, password
    return None


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: BinaryIO | None) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def read(self) -> bytes:
        return self.body.read() if self.body else b""

    def close(self) -> None:
        if self.body is not None:
            self.body.close()


class Client:
    def __init__(self, registry: str, tls_verify: bool = True, ca_file: str | None = None,
                 authfile: str | None = None, registries: Registries | None = None,
                 creds: tuple[str, str] | None = None) -> None:
        conf = registries or Registries()
        self.registry = registry
        self.scheme = "https" if tls_verify and registry not in conf.insecure else "http"
        self.ctx = ssl.create_default_context(cafile=ca_file) if ca_file else None
        self.creds = creds or load_auth(registry, authfile, conf.auth_file)
        self.token: str | None = None
        self.basic = False

    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.registry}{path}"

    def _auth_header(self) -> dict[str, str]:
        if self.token:
            return {"Authorization": f"Bearer {self.token}"}
        if self.basic and self.creds:
            raw = base64.b64encode(f"{self.creds[0]}:{self.creds[1]}".encode()).decode()
            return {"Authorization": f"Basic {raw}"}
        return {}

    def _authenticate(self, challenge: str) -> bool:
        scheme, _, params = challenge.partition(" ")
        if scheme.lower() == "basic":
            if not self.creds or self.basic:
                return False
            self.basic = True
            return True
        if scheme.lower() != "bearer":
            return False
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        realm = fields.pop("realm", "")
        if not realm:
            return False
        url = realm + "?" + urllib.parse.urlencode(fields)
        headers = {}
        if self.creds:
            raw = base64.b64encode(f"{self.creds[0]}:{self.creds[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {raw}"
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT,
                                        context=self.ctx) as r:
                data = json.load(r)
        except urllib.error.HTTPError as e:
            if e.code in (401, 403):
                raise RegistryError(f"{self.registry}: authentication required or refused by its token service "
                                    f"{realm} (berth login {self.registry}, or --authfile)") from None
            raise RegistryError(f"{self.registry}: getting a token from {realm} failed: {e}") from None
        except (urllib.error.URLError, ValueError) as e:
            raise RegistryError(f"{self.registry}: getting a token from {realm} failed: {e}") from None
        token = data.get("token") or data.get("access_token")
        if not token or token == self.token:
            return False
        self.token = token
        return True

    def request(self, method: str, path_or_url: str, headers: dict[str, str] | None = None,
                data: bytes | BinaryIO | None = None, ok: tuple[int, ...] = (200,)) -> Response:
        """One request with auth challenges answered and retries with backoff on 5xx and dropped
        connections (bodies given as streams must be rewindable for retries)."""
        url = path_or_url if "://" in path_or_url else self.url(path_or_url)
        attempt = 0
        auth_tries = 0
        while True:
            hdrs = dict(headers or {})
            hdrs.update(self._auth_header())
            if hasattr(data, "seek"):
                data.seek(0)  # type: ignore[union-attr]
            req = urllib.request.Request(url, data=data, headers=hdrs, method=method)  # type: ignore[arg-type]
            try:
                r = urllib.request.urlopen(req, timeout=TIMEOUT, context=self.ctx)  # noqa: S310
                status, rheaders, body = r.status, {k.lower(): v for k, v in r.headers.items()}, r
            except urllib.error.HTTPError as e:
                status, rheaders, body = e.code, {k.lower(): v for k, v in e.headers.items()}, e
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as e:
                attempt += 1
                if attempt > RETRIES:
                    reason = getattr(e, "reason", e)
                    raise RegistryError(f"{self.registry}: {method} {urllib.parse.urlparse(url).path} failed: "
                                        f"{reason} (check the address; for plain http: --tls-verify=false, or "
                                        "insecure_registries in the config file)") from None
                time.sleep(BACKOFF * 2 ** (attempt - 1))
                continue
            if status == 401 and auth_tries < 2 and self._authenticate(rheaders.get("www-authenticate", "")):
                body.close()
                auth_tries += 1
                continue
            if status >= 500 and attempt < RETRIES:
                body.close()
                attempt += 1
                time.sleep(BACKOFF * 2 ** (attempt - 1))
                continue
            if status in ok:
                return Response(status, rheaders, body)  # type: ignore[arg-type]
            text = body.read(2000).decode(errors="replace")
            body.close()
            if status == 401:
                raise RegistryError(f"{self.registry}: authentication required or refused "
                                    f"(berth login {self.registry}, or --authfile)")
            if status == 404:
                raise NotFound(f"{self.registry}: {urllib.parse.urlparse(url).path} not found")
            raise RegistryError(f"{self.registry}: {method} {urllib.parse.urlparse(url).path} answered {status}: "
                                f"{_error_text(text)}")


def _error_text(text: str) -> str:
    try:
        errs = json.loads(text).get("errors") or []
        return "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errs) or text[:200]
    except (ValueError, AttributeError):
        return text[:200].strip()
