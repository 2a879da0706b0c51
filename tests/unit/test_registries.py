"""Credentials for image pulls: the registry an image names, a Docker config.json's auths,
credHelpers and credsStore (helper programs run for real), a job's registry_auth first, the
file read again when it changes — and no credential in a repr, an error or a log line."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from pathlib import Path

import pytest
import structlog
from docker.errors import APIError, NotFound

from jobs.plan import ContainerSpec, PullPolicy, RegistryLogin, SecretRef
from scheduler.docker_engine import DockerEngine, denied
from scheduler.engine import PullAuth
from scheduler.errors import EngineError, PullDeniedError
from scheduler.registries import HUB_SERVER, Registries, RegistryError, registry_host
from scheduler.secrets import SecretError
from scheduler.settings import load_config
from scheduler.startup import Parts, take_base

from .fakes import FakeClock, FakeEngine, FakeLock
from .helpers import CAPTURE, Heard, ended, make_config, make_runner

PASSWORD = "hunter2-secret"  # noqa: S105 - a test's value, looked for in every output
OLD, NEW, FILED, TOKEN = "old-1", "new-2", "pw-f", "t1"
"""Other values of secrets, compared by name."""


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def write_config(path: Path, **content: object) -> Path:
    path.write_text(json.dumps(content))
    return path


@pytest.fixture
def helpers_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory first on PATH, for fake docker-credential-* programs."""
    directory = tmp_path / "bin"
    directory.mkdir()
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ.get('PATH', '')}")
    return directory


def fake_helper(directory: Path, name: str, script: str) -> Path:
    """``docker-credential-<name>``: a shell script (its stdin: the server asked for)."""
    program = directory / f"docker-credential-{name}"
    program.write_text(f"#!/bin/sh\n{script}\n")
    program.chmod(0o755)
    return program


def answering(asked: Path, username: str, secret: str) -> str:
    """A helper's ``get``: records its argument and the server, answers the credentials."""
    return (
        f'read server\necho "$1 $server" >> {asked}\n'
        f'printf \'{{"ServerURL":"%s","Username":"{username}","Secret":"{secret}"}}\' "$server"'
    )


# --- the registry an image names ----------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "host"),
    [
        ("busybox", "docker.io"),
        ("busybox:1.36", "docker.io"),
        ("library/busybox", "docker.io"),
        ("someone/app:1", "docker.io"),
        ("docker.io/library/busybox", "docker.io"),
        ("index.docker.io/someone/app", "docker.io"),
        ("ghcr.io/owner/app:2", "ghcr.io"),
        ("registry.example.com/team/app@sha256:" + "a" * 64, "registry.example.com"),
        ("localhost/app", "localhost"),
        ("localhost:5000/app:1", "localhost:5000"),
        ("127.0.0.1:5000/a/b:c", "127.0.0.1:5000"),
        ("Registry/app", "Registry"),
        ("myorg/team/app", "docker.io"),
    ],
)
def test_the_registry_is_the_image_references_host_as_docker_reads_it(
    image: str, host: str
) -> None:
    """A first part with '.', ':' or a capital, or 'localhost', is a host; else Docker Hub."""
    assert registry_host(image) == host


# --- config.json: auths -------------------------------------------------------------------


def test_auths_give_the_user_and_password_of_the_images_registry(tmp_path: Path) -> None:
    """``auth`` (base64 of user:password, as docker login writes it) or ``username`` and
    ``password``; keys with a scheme or a path match the host; Docker Hub's old URL
    matches images with no host."""
    config = write_config(
        tmp_path / "config.json",
        auths={
            "registry.example.com:5000": {"auth": b64(f"alice:{PASSWORD}")},
            "https://ghcr.io/v2/": {"username": "bob", "password": "pw-b"},
            "https://index.docker.io/v1/": {"auth": b64("carol:pw:with:colons")},
        },
    )
    registries = Registries(config)
    found = registries.credentials("registry.example.com:5000/app:1")
    assert (found.registry, found.server, found.username, found.password) == (
        "registry.example.com:5000",
        "registry.example.com:5000",
        "alice",
        PASSWORD,
    )
    assert found.source == f"auths in {config}"
    assert (
        registries.credentials("ghcr.io/o/a").username,
        registries.credentials("ghcr.io/o/a").password,
    ) == ("bob", "pw-b")
    hub = registries.credentials("someone/app")
    assert (hub.server, hub.username, hub.password) == (HUB_SERVER, "carol", "pw:with:colons")


def test_no_entry_or_no_file_is_an_anonymous_pull_saying_why(tmp_path: Path) -> None:
    """A registry the file does not name, or no file at all (the default place often has
    none): no credentials, and the source says so (a denial quotes it)."""
    config = write_config(tmp_path / "config.json", auths={"other.example": {"auth": b64("a:b")}})
    none = Registries(config).credentials("ghcr.io/o/a")
    assert (none.username, none.password, none.identity_token) == (None, None, None)
    assert none.source == f"anonymous: no credentials for ghcr.io in {config}"
    missing = Registries(tmp_path / "absent.json").credentials("ghcr.io/o/a")
    assert missing.password is None
    assert missing.source == f"anonymous: {tmp_path / 'absent.json'} does not exist"


def test_the_default_file_is_docker_configs_or_the_home_directorys(tmp_path: Path) -> None:
    """Unset registry_config: $DOCKER_CONFIG/config.json, else ~/.docker/config.json."""
    assert (
        Registries(None, environ={"DOCKER_CONFIG": str(tmp_path)}).path == tmp_path / "config.json"
    )
    assert Registries(None, environ={}).path == Path.home() / ".docker" / "config.json"


def test_an_identity_token_is_presented_as_one(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "config.json", auths={"r.example": {"auth": b64("u:"), "identitytoken": "tok-1"}}
    )
    found = Registries(config).credentials("r.example/app")
    assert (found.identity_token, found.password) == ("tok-1", None)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON (line 1)"),
        ("[]", "expected a JSON object"),
        ('{"auths": []}', "auths: expected an object"),
        ('{"auths": {"r.example": {"auth": "%%%' + PASSWORD + '"}}}', "auths.r.example.auth: not base64 of 'user:password'"),
        ('{"auths": {"r.example": {"auth": "' + b64(PASSWORD) + '"}}}', "auths.r.example.auth: not base64 of 'user:password'"),
        ('{"auths": {"r.example": {"password": 5}}}', "auths.r.example.password: expected a string"),
        ('{"credHelpers": {"r.example": ""}}', "credHelpers.r.example: expected a name"),
        ('{"credsStore": 3}', "credsStore: expected a name"),
    ],
)  # fmt: skip
def test_a_malformed_file_fails_the_pull_naming_the_file_and_key_not_the_value(
    tmp_path: Path, content: str, message: str
) -> None:
    """The error names the file and the key; never the value (it may be a password)."""
    config = tmp_path / "config.json"
    config.write_text(content)
    with pytest.raises(RegistryError) as raised:
        Registries(config).credentials("r.example/app")
    assert str(raised.value) == f"registry_config {config}: {message}"
    assert PASSWORD not in str(raised.value)
    assert isinstance(raised.value, SecretError)  # a run's credentials: failed, not crashed


def test_the_file_is_read_again_when_it_changes_not_at_every_pull(tmp_path: Path) -> None:
    """A rotated token is used at the next pull; an unchanged file (same mtime, size and
    inode) is not parsed again."""
    config = write_config(tmp_path / "config.json", auths={"r.example": {"auth": b64("u:old-1")}})
    registries = Registries(config)
    assert registries.credentials("r.example/app").password == OLD
    stat = config.stat()
    config.write_text(json.dumps({"auths": {"r.example": {"auth": b64("u:new-2")}}}))
    os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size, same mtime
    assert registries.credentials("r.example/app").password == OLD
    os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert registries.credentials("r.example/app").password == NEW


# --- credential helpers -------------------------------------------------------------------


def test_a_credhelper_for_the_registry_is_asked_at_each_pull(
    tmp_path: Path, helpers_on_path: Path
) -> None:
    """``credHelpers``: docker-credential-<name> get, the server on stdin, its JSON answer;
    before the file's auths, asked again at every pull (tokens rotate)."""
    asked = tmp_path / "asked"
    fake_helper(helpers_on_path, "fake", answering(asked, "helper-user", PASSWORD))
    config = write_config(
        tmp_path / "config.json",
        credHelpers={"r.example:5000": "fake"},
        auths={"r.example:5000": {"auth": b64("file-user:file-pw")}},
    )
    registries = Registries(config)
    first = registries.credentials("r.example:5000/team/app:1")
    registries.credentials("r.example:5000/team/app:1")
    assert (first.username, first.password) == ("helper-user", PASSWORD)
    assert first.source == f"docker-credential-fake (credHelpers in {config})"
    assert asked.read_text().splitlines() == ["get r.example:5000", "get r.example:5000"]
    other = registries.credentials("busybox")  # no helper for Docker Hub, no credsStore
    assert other.password is None


def test_a_helpers_token_answer_is_an_identity_token(tmp_path: Path, helpers_on_path: Path) -> None:
    """User name ``<token>``: the secret is an identity token; Docker Hub is asked by its
    old URL."""
    asked = tmp_path / "asked"
    fake_helper(helpers_on_path, "tok", answering(asked, "<token>", "id-token-1"))
    config = write_config(tmp_path / "config.json", credsStore="tok")
    found = Registries(config).credentials("library/busybox")
    assert (found.identity_token, found.password, found.username) == ("id-token-1", None, None)
    assert asked.read_text().split() == ["get", HUB_SERVER]


def test_a_credsstore_without_the_registry_falls_back_to_auths(
    tmp_path: Path, helpers_on_path: Path
) -> None:
    """``credsStore`` answering 'credentials not found': the file's auths entry, if any."""
    fake_helper(helpers_on_path, "store", 'echo "credentials not found in native keychain"; exit 1')
    config = write_config(
        tmp_path / "config.json", credsStore="store", auths={"r.example": {"auth": b64("u:pw-f")}}
    )
    registries = Registries(config)
    assert registries.credentials("r.example/app").password == FILED
    assert registries.credentials("ghcr.io/o/a").password is None


def test_a_missing_helper_fails_the_pull_naming_it(tmp_path: Path, helpers_on_path: Path) -> None:
    """Not at load, not for other registries: at a pull from the registry it serves."""
    config = write_config(tmp_path / "config.json", credHelpers={"r.example": "absent-x"})
    registries = Registries(config)
    assert registries.credentials("ghcr.io/o/a").password is None
    with pytest.raises(RegistryError) as raised:
        registries.credentials("r.example/app")
    assert str(raised.value) == (
        f"registry r.example: the credential helper docker-credential-absent-x named by "
        f"credHelpers in {config} is not on the daemon's PATH (install it in the daemon's "
        "image, or remove the entry)"
    )
    store = write_config(tmp_path / "store.json", credsStore="absent-y")
    with pytest.raises(RegistryError, match="docker-credential-absent-y named by credsStore"):
        Registries(store).credentials("busybox")


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ('echo "keychain locked" >&2; exit 3', "failed (exit 3): keychain locked"),
        ("echo not-json", "did not answer JSON with Username and Secret"),
    ],
)
def test_a_failing_helper_fails_the_pull_with_its_reason(
    tmp_path: Path, helpers_on_path: Path, script: str, message: str
) -> None:
    fake_helper(helpers_on_path, "bad", script)
    config = write_config(tmp_path / "config.json", credHelpers={"r.example": "bad"})
    with pytest.raises(RegistryError) as raised:
        Registries(config).credentials("r.example/app")
    assert str(raised.value) == (
        f"registry r.example: docker-credential-bad (credHelpers in {config}) {message}"
    )


# --- a job's registry_auth ----------------------------------------------------------------


def test_a_jobs_registry_auth_comes_before_the_file(tmp_path: Path, helpers_on_path: Path) -> None:
    """The job's login wins over auths and helpers (a missing helper is not even looked
    for); its password file is read at the pull."""
    config = write_config(
        tmp_path / "config.json",
        credHelpers={"r.example": "absent-z"},
        auths={"r.example": {"auth": b64("file-user:file-pw")}},
    )
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD + "\n")
    login = RegistryLogin("job-user", SecretRef("registry_auth.password", file=str(secret)))
    found = Registries(config).credentials("r.example/app", login)
    assert (found.username, found.password, found.source) == (
        "job-user",
        PASSWORD,
        "the job's registry_auth",
    )
    secret.unlink()
    with pytest.raises(SecretError, match=r"registry_auth.password: cannot read .*/pw"):
        Registries(config).credentials("r.example/app", login)


def test_registry_auth_is_checked_at_load_and_never_shown(tmp_path: Path) -> None:
    """Username and password are required; the password (text, env or file) is in no repr of
    the settings, the plan's spec or the pull's credentials."""
    job = f'registry_auth = {{ username = "u1", password = "{PASSWORD}" }}'
    config = make_config(tmp_path, job)
    entry = config.jobs["j"]
    assert PASSWORD not in repr(entry.job)
    assert PASSWORD not in repr(config)
    spec = ContainerSpec(image="r/a", registry_auth=RegistryLogin("u1", PASSWORD))
    assert PASSWORD not in repr(spec)
    assert PASSWORD not in repr(PullAuth("r", "r", "s", "u1", PASSWORD, PASSWORD))
    path = tmp_path / "bad.toml"
    path.write_text(
        '[jobs.j]\nkind = "run"\nimage = "img:1"\nschedule = "@daily"\n'
        'registry_auth = { username = "u1" }\n'
    )
    with pytest.raises(
        Exception, match=r"jobs\.j\.registry_auth\.password: .*(required|missing)"
    ) as raised:
        load_config(path, {})
    assert PASSWORD not in str(raised.value)


def test_registry_config_must_be_an_absolute_file_path(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[daemon]\nregistry_config = "docker/config.json"\n')
    with pytest.raises(Exception, match=r"registry_config: expected the absolute path of a file"):
        load_config(path, {})


def test_a_run_pulls_with_the_jobs_credentials_or_the_daemons_file(tmp_path: Path) -> None:
    """The engine is handed what to ask at a pull: the job's registry_auth, or for a job
    without one, the registry_config file's entry for its image's registry."""
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD)
    file = write_config(tmp_path / "docker.json", auths={"r.example": {"auth": b64("f-user:f-pw")}})
    config = make_config(
        tmp_path,
        daemon=f'registry_config = "{file}"',
        jobs=(
            '[jobs.own]\nkind = "run"\nimage = "r.example/app:1"\nschedule = "@daily"\n'
            f'registry_auth = {{ username = "j-user", password = {{ file = "{secret}" }} }}\n'
            '[jobs.filed]\nkind = "run"\nimage = "r.example/app:1"\nschedule = "@daily"\n'
        ),
    )
    for job, expected in (("own", ("j-user", PASSWORD)), ("filed", ("f-user", "f-pw"))):
        engine = FakeEngine(FakeClock())
        runner = make_runner(config, engine, Heard())
        with structlog.testing.capture_logs(processors=CAPTURE) as logs:
            assert runner.submit(config.jobs[job], engine.clock.now()) is not None
            ended(runner)
        assert engine.pull_auth is not None
        found = engine.pull_auth()
        assert (found.username, found.password) == expected
        assert PASSWORD not in repr(logs)


# --- the pull on the engine ---------------------------------------------------------------


class PullingApi:
    """docker-py's client as far as a pull goes: the image is missing; the pull answers
    ``error`` (an APIError) or a progress stream ending in ``stream_error``."""

    def __init__(self, error: Exception | None = None, stream_error: str | None = None) -> None:
        self.error = error
        self.stream_error = stream_error
        self.auth_configs: list[dict[str, str]] = []

    def inspect_image(self, image: str) -> None:
        raise NotFound("missing", response=_Response(404), explanation=f"No such image: {image}")

    def pull(self, repository: str, **kwargs: object) -> list[dict[str, str]]:
        self.auth_configs.append(dict(kwargs["auth_config"]))  # type: ignore[call-overload]
        if self.error is not None:
            raise self.error
        items = [{"status": "Pulling"}]
        if self.stream_error is not None:
            items.append({"error": self.stream_error})
        return items


class _Response:
    def __init__(self, status: int) -> None:
        self.status_code = status
        self.reason = "r"
        self.url = "http+docker://localhost/images/create"


def auth(**values: str | None) -> PullAuth:
    fields = {"registry": "r.example", "server": "r.example", "source": "auths in /c.json"}
    return PullAuth(**{**fields, **values})  # type: ignore[arg-type]


def test_a_refusal_is_pull_denied_naming_the_registry_and_where_the_credentials_came_from() -> None:
    """401/denied from the registry: PullDeniedError, the registry and the credentials'
    source named; a password the engine might quote is masked."""
    error = APIError(
        "500",
        response=_Response(500),
        explanation=f"Head https://r.example/v2/: unauthorized: {PASSWORD}",
    )
    api = PullingApi(error)
    with pytest.raises(PullDeniedError) as raised:
        DockerEngine(api).ensure_image(
            "r.example/app:1", PullPolicy.MISSING, lambda: auth(username="u", password=PASSWORD)
        )
    assert raised.value.registry == "r.example"
    assert str(raised.value) == (
        "registry r.example denied the pull of image 'r.example/app:1' (credentials: auths in "
        "/c.json): Head https://r.example/v2/: unauthorized: ***"
    )
    assert api.auth_configs == [
        {"serveraddress": "r.example", "username": "u", "password": PASSWORD}
    ]


def test_an_error_in_the_progress_stream_is_the_pulls_error() -> None:
    """A refusal in the stream is a denial too; another error keeps its kind and text."""
    with pytest.raises(
        PullDeniedError, match=r"registry r\.example denied .*: denied: requested access"
    ):
        DockerEngine(
            PullingApi(stream_error="denied: requested access to the resource is denied")
        ).ensure_image("r.example/app:1", PullPolicy.ALWAYS, auth)
    with pytest.raises(EngineError) as raised:
        DockerEngine(PullingApi(stream_error="unexpected EOF")).ensure_image(
            "r.example/app:1", PullPolicy.ALWAYS
        )
    assert str(raised.value) == "image 'r.example/app:1' could not be pulled: unexpected EOF"
    assert not isinstance(raised.value, PullDeniedError)


def test_the_engine_gets_explicit_credentials_or_none_never_docker_pys_own() -> None:
    """Anonymous pulls send an empty auth_config (docker-py would otherwise use the config
    file it read at start); a token is sent as one; credentials are asked only to pull."""
    api = PullingApi()
    engine = DockerEngine(api)
    engine.ensure_image("busybox", PullPolicy.ALWAYS)
    engine.ensure_image("r.example/a", PullPolicy.ALWAYS, lambda: auth(identity_token=TOKEN))
    assert api.auth_configs == [{}, {"serveraddress": "r.example", "identitytoken": "t1"}]
    with pytest.raises(EngineError, match="pull = 'never'"):
        engine.ensure_image("r.example/a", PullPolicy.NEVER, lambda: pytest.fail("asked"))
    assert len(api.auth_configs) == 2


@pytest.mark.parametrize(
    ("message", "refused"),
    [
        ("Head https://r/v2/a/manifests/1: unauthorized: authentication required", True),
        ("pull access denied for a, repository does not exist or may require 'docker login'", True),
        ("denied: requested access to the resource is denied", True),
        ("Get https://r/v2/: no basic auth credentials", True),
        ("Error response from daemon: 401 Unauthorized", True),
        (
            "403 Forbidden: refused by a proxy in front of the engine (http://proxy/images/create)",
            False,
        ),
        ("manifest for a:1 not found: manifest unknown", False),
        ("open /var/lib/docker/tmp/x: permission denied", False),
        ("read tcp 127.0.0.1:1->127.0.0.1:2: connection reset by peer", False),
    ],
)
def test_what_counts_as_the_registry_refusing(message: str, refused: bool) -> None:
    assert denied(message) is refused


# --- the lock container's image ------------------------------------------------------------


class PullingLockEngine(FakeEngine):
    """Pulls the lock's image: asks for its credentials, as the real engine does when the
    image is missing."""

    def lock(
        self,
        name: str,
        image: str,
        labels: Mapping[str, str],
        auth: Callable[[], PullAuth] | None = None,
    ) -> FakeLock:
        self.pulled_with = auth() if auth is not None else None
        return super().lock(name, image, labels, auth)


def test_the_lock_containers_image_is_pulled_with_the_files_credentials(tmp_path: Path) -> None:
    """At start the ops image (a private one) is pulled with registry_config's credentials;
    credentials that cannot be had stop the start: daemon.failed, reason lock, naming why."""
    file = write_config(
        tmp_path / "docker.json", auths={"r.example": {"auth": b64(f"ops:{PASSWORD}")}}
    )
    daemon = f'ops_image = "r.example/crontainer:1"\nregistry_config = "{file}"'
    settings = make_config(tmp_path, daemon=daemon).daemon
    engine = PullingLockEngine(FakeClock())
    with ExitStack() as stack:
        assert take_base(stack, engine, settings, Parts()) is not None
    assert engine.pulled_with is not None
    assert (engine.pulled_with.username, engine.pulled_with.password) == ("ops", PASSWORD)
    file.write_text("{broken")
    with ExitStack() as stack, structlog.testing.capture_logs() as logs:
        assert take_base(stack, PullingLockEngine(FakeClock()), settings, Parts()) is None
    failed = [e for e in logs if e["event"] == "daemon.failed"]
    assert [(e["reason"], e["error"]) for e in failed] == [
        ("lock", f"registry_config {file}: not valid JSON (line 1)")
    ]
