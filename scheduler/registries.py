"""Credentials for image pulls: the registry an image reference names (as Docker reads it),
and what to present there — a job's ``registry_auth``, else the daemon's Docker
``config.json`` (``[daemon] registry_config``): ``credHelpers`` for that registry, else
``credsStore``, each a ``docker-credential-<name>`` program on PATH, else ``auths``.

The file is read again when it changes (its mtime, size or inode), and a helper is asked
at each pull: tokens rotate. Nothing here logs a credential or puts one in an error.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from scheduler.engine import PullAuth
from scheduler.secrets import SecretError, ref_value

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from jobs.plan import RegistryLogin

    Run = Callable[..., subprocess.CompletedProcess[str]]

DOCKER_HUB = "docker.io"
HUB_SERVER = "https://index.docker.io/v1/"
"""The server address Docker keeps Docker Hub's credentials under."""
_HUB_NAMES = frozenset((DOCKER_HUB, "index.docker.io", "registry-1.docker.io"))
HELPER_TIMEOUT_S = 30.0
"""A credential helper that has not answered by then fails the pull."""
_TOKEN_USER = "<token>"  # noqa: S105 - Docker's marker, not a password
"""A helper's user name meaning: the secret is an identity token."""
_MESSAGE_LIMIT = 200


class RegistryError(SecretError):
    """The credentials for a registry cannot be had (config.json unreadable or malformed, a
    helper missing or failing); the message says which and why, never a credential."""


def registry_host(image: str) -> str:
    """The registry an image reference names, as Docker reads it: the part before the first
    ``/`` when it looks like a host (holds ``.`` or ``:``, is ``localhost``, or has capitals),
    else Docker Hub (``docker.io``)."""
    first, slash, _ = image.partition("/")
    if not slash:
        return DOCKER_HUB
    if "." in first or ":" in first or first == "localhost" or first.lower() != first:
        return canonical(first)
    return DOCKER_HUB


def canonical(address: str) -> str:
    """A config.json key or a host as the host it stands for: no scheme, no path; Docker
    Hub's names as ``docker.io``."""
    host = address.strip()
    for scheme in ("https://", "http://"):
        if host.lower().startswith(scheme):
            host = host[len(scheme) :]
    host = host.split("/", 1)[0]
    return DOCKER_HUB if host.lower() in _HUB_NAMES else host


def server_address(registry: str) -> str:
    """What a helper is asked for and the engine is given: Docker Hub's old URL, else the host."""
    return HUB_SERVER if registry == DOCKER_HUB else registry


def default_config(environ: Mapping[str, str]) -> Path:
    """Where Docker's client keeps its config: ``$DOCKER_CONFIG/config.json``, else
    ``~/.docker/config.json``."""
    directory = environ.get("DOCKER_CONFIG")
    if directory:
        return Path(directory) / "config.json"
    return Path.home() / ".docker" / "config.json"


@dataclass(frozen=True, slots=True)
class _Entry:
    """An ``auths`` entry: a user and password, or an identity token (repr shows neither)."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    identity_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class DockerConfig:
    """What a config.json says about credentials (hosts canonical)."""

    auths: Mapping[str, _Entry] = field(default_factory=dict)
    helpers: Mapping[str, str] = field(default_factory=dict)
    store: str | None = None
    missing: bool = False


def parse_config(text: str, path: Path) -> DockerConfig:
    """A config.json's credentials; RegistryError naming ``path`` and the key at fault (never
    a value) when they cannot be read."""
    try:
        data = json.loads(text)
    except ValueError as e:
        line = getattr(e, "lineno", None)
        where = f" (line {line})" if line else ""
        raise RegistryError(f"registry_config {path}: not valid JSON{where}") from None
    if not isinstance(data, dict):
        raise RegistryError(f"registry_config {path}: expected a JSON object")
    auths = _object(data, "auths", path)
    entries = {canonical(key): _entry(value, key, path) for key, value in auths.items()}
    helpers = {}
    for key, name in _object(data, "credHelpers", path).items():
        if not isinstance(name, str) or not name:
            raise RegistryError(f"registry_config {path}: credHelpers.{key}: expected a name")
        helpers[canonical(key)] = name
    store = data.get("credsStore")
    if store is not None and not isinstance(store, str):
        raise RegistryError(f"registry_config {path}: credsStore: expected a name")
    return DockerConfig(entries, helpers, store or None)


def _object(data: dict[str, object], key: str, path: Path) -> dict[str, object]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RegistryError(f"registry_config {path}: {key}: expected an object")
    return value


def _entry(value: object, key: str, path: Path) -> _Entry:
    """An ``auths`` entry: ``auth`` (base64 of ``user:password``), else ``username`` and
    ``password``; ``identitytoken`` with either."""
    where = f"registry_config {path}: auths.{key}"
    if not isinstance(value, dict):
        raise RegistryError(f"{where}: expected an object")
    fields = {}
    for name in ("auth", "username", "password", "identitytoken"):
        item = value.get(name)
        if item is not None and not isinstance(item, str):
            raise RegistryError(f"{where}.{name}: expected a string")
        fields[name] = item or None
    username, password = fields["username"], fields["password"]
    if fields["auth"] is not None:
        try:
            decoded = base64.b64decode(fields["auth"], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise RegistryError(f"{where}.auth: not base64 of 'user:password'") from None
        username, colon, password = decoded.partition(":")
        if not colon:
            raise RegistryError(f"{where}.auth: not base64 of 'user:password'")
    return _Entry(username or None, password or None, fields["identitytoken"])


class Registries:
    """The credentials each pull presents, from a job's login or the Docker config file."""

    def __init__(
        self,
        config: Path | None,
        *,
        environ: Mapping[str, str] | None = None,
        which: Callable[[str], str | None] = shutil.which,
        run: Run = subprocess.run,
    ) -> None:
        """``config``: ``registry_config`` (None: Docker's default place, ``environ``'s)."""
        self._path = config if config is not None else default_config(environ or os.environ)
        self._which = which
        self._run = run
        self._lock = threading.Lock()
        self._cached: tuple[tuple[int, int, int], DockerConfig] | None = None

    @property
    def path(self) -> Path:
        """The config file read."""
        return self._path

    def auth_for(self, image: str, login: RegistryLogin | None) -> Callable[[], PullAuth]:
        """What the engine asks when it pulls ``image`` (and only then)."""
        return lambda: self.credentials(image, login)

    def credentials(self, image: str, login: RegistryLogin | None = None) -> PullAuth:
        """The credentials for pulling ``image``: ``login``'s, else the config file's for its
        registry (a helper's first); anonymous when there are none. RegistryError (or
        SecretError, for ``login``'s password) when they cannot be had."""
        registry = registry_host(image)
        server = server_address(registry)
        if login is not None:
            password = ref_value(login.password)
            return PullAuth(registry, server, "the job's registry_auth", login.username, password)
        config = self.config()
        path = self._path
        if config.missing:
            return PullAuth(registry, server, f"anonymous: {path} does not exist")
        helper = config.helpers.get(registry)
        if helper is not None:
            found = self._ask(helper, server, registry, f"credHelpers in {path}")
            if found is not None:
                return found
        elif config.store is not None:
            found = self._ask(config.store, server, registry, f"credsStore in {path}")
            if found is not None:
                return found
        entry = config.auths.get(registry)
        if entry is not None and (entry.password or entry.identity_token):
            return PullAuth(
                registry,
                server,
                f"auths in {path}",
                entry.username,
                entry.password,
                entry.identity_token,
            )
        return PullAuth(registry, server, f"anonymous: no credentials for {registry} in {path}")

    def config(self) -> DockerConfig:
        """The config file as it is now: read again only when it changed."""
        path = self._path
        try:
            st = path.stat()
        except FileNotFoundError:
            return DockerConfig(missing=True)
        except OSError as e:
            raise RegistryError(f"registry_config {path}: {e.strerror}") from None
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        with self._lock:
            if self._cached is not None and self._cached[0] == key:
                return self._cached[1]
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            why = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
            raise RegistryError(f"registry_config {path}: cannot be read: {why}") from None
        parsed = parse_config(text, path)
        with self._lock:
            self._cached = (key, parsed)
        return parsed

    def _ask(self, name: str, server: str, registry: str, why: str) -> PullAuth | None:
        """The credentials helper ``name`` keeps for ``server``; None when it has none."""
        program = f"docker-credential-{name}"
        source = f"{program} ({why})"
        found = self._which(program)
        if found is None:
            raise RegistryError(
                f"registry {registry}: the credential helper {program} named by {why} is not "
                "on the daemon's PATH (install it in the daemon's image, or remove the entry)"
            )
        try:
            done = self._run(
                [found, "get"],
                input=server,
                capture_output=True,
                text=True,
                timeout=HELPER_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise RegistryError(
                f"registry {registry}: {source} did not answer in {HELPER_TIMEOUT_S:g} s"
            ) from None
        except OSError as e:
            raise RegistryError(f"registry {registry}: {source} cannot run: {e.strerror}") from None
        if done.returncode != 0:
            said = _first_line(done.stdout) or _first_line(done.stderr)
            if "credentials not found" in said.lower():
                return None
            raise RegistryError(
                f"registry {registry}: {source} failed (exit {done.returncode}): {said}"
            )
        return _answer(done.stdout, registry, server, source)


def _answer(text: str, registry: str, server: str, source: str) -> PullAuth | None:
    """A helper's JSON answer (``Username``, ``Secret``) as credentials."""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("Secret"), str):
        raise RegistryError(
            f"registry {registry}: {source} did not answer JSON with Username and Secret"
        )
    secret, username = data["Secret"], data.get("Username")
    if not secret:
        return None
    if username == _TOKEN_USER:
        return PullAuth(registry, server, source, identity_token=secret)
    return PullAuth(registry, server, source, str(username or ""), secret)


def _first_line(text: str | None) -> str:
    """The first non-blank line of a helper's output, cut short (it is only a reason)."""
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()[:_MESSAGE_LIMIT]
    return ""
