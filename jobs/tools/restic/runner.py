"""Running restic for the tool: its environment, its ``--json`` output read, and everything
it says passed on through ``say`` with the secrets taken out.

The secrets (the repository's password, the values of ``env``, a password in the
repository's URL) live only in the environment of the restic processes this module
starts; whatever restic prints on stderr is said again line by line, the repository
shown redacted and every secret value as ``***``."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, cast

from jobs.protocol.lines import say
from jobs.protocol.restic import redacted, url_password
from jobs.tools import redact

if TYPE_CHECKING:
    from jobs.protocol.restic import ResticRequest
    from jobs.tools.restic.ssh import Ssh

TOOL = "restic"
"""The prefix of the tool's diagnostics on stderr."""
RESTIC = "restic"
"""The program (Debian's restic in the ops image)."""
FATAL = "Fatal: "
"""What starts restic's account of why it gave up."""
_RETRYING = " returned error, retrying after "
"""What restic says each time a request to the repository failed and is tried again
(restic 0.14: up to 10 times over about a minute, then it gives up)."""
_TERMINAL = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
"""The terminal's control sequences restic writes even to a pipe ("\x1b[2K": clear the
line)."""


class ResticError(Exception):
    """A failure with a message for the run's error (already redacted)."""


class Redactor(redact.Redactor):
    """Takes a request's secrets out of a text: the repository as ``redacted`` shows it,
    then the password, every ``env`` value, a password in the repository's URL and each
    line of an SSH key as ``***``."""

    def __init__(self, request: ResticRequest) -> None:
        self.repository = redacted(request.repository)
        self._full = request.repository
        in_url = url_password(request.repository)
        key = (request.ssh_key or "").splitlines()  # every line, however short
        super().__init__({request.password or "", in_url, *request.env.values(), *key})

    def __call__(self, text: str) -> str:
        return super().__call__(text.replace(self._full, self.repository))


def environment(request: ResticRequest, cache: str) -> dict[str, str]:
    """The restic processes' environment: this one without any ``RESTIC_*`` variable of
    its own, then the request's ``env``, its repository, password and a cache directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESTIC_")}
    env.update(request.env)
    env["RESTIC_REPOSITORY"] = request.repository
    env["RESTIC_PASSWORD"] = request.password or ""
    env["RESTIC_CACHE_DIR"] = cache
    return env


def describe(message: dict[str, Any]) -> str:
    """One of restic's JSON error messages (``"message_type": "error"``) in words: what
    could not be read, and why (``{"Op": "open", "Err": 13}`` → "open: Permission denied")."""
    error = message.get("error")
    why = json.dumps(error)
    if isinstance(error, dict):
        code = error.get("Err")
        reason = os.strerror(code) if isinstance(code, int) else str(code or "")
        why = f"{error.get('Op', 'read')}: {reason}" if reason else why
    return f"cannot read {message.get('item', '?')} ({message.get('during', '?')}): {why}"


@dataclass
class Finished:
    """What one restic command did: its exit code, the JSON values and the text lines it
    printed on stdout (progress messages left out), the error messages and the text lines
    of its stderr."""

    code: int
    values: list[object] = field(default_factory=list)
    output: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    refusal: str | None = None
    """ssh's refusal to connect to an ``sftp:`` repository, in words."""
    interrupted: bool = False
    """It was stopped: a SIGTERM reached the tool meanwhile (passed on as SIGINT)."""
    said: list[str] = field(default_factory=list)
    """Every line of its stderr in words (errors described), in order, redacted: what it
    said, or would have said if not ``quiet``."""

    def say_again(self) -> None:
        """Say what a ``quiet`` run kept, in its order."""
        for line in self.said:
            say(TOOL, line)

    def reason(self) -> str:
        """restic's own account of a failure: ssh's refusal, its ``Fatal:`` line (restic
        0.14 may write it at the end of a line whose message has no newline), else its
        first line that is not a notice of a retry (``… returned error, retrying after
        …``), else its first."""
        if self.refusal is not None:
            return self.refusal
        fatal = [line.rpartition(FATAL)[2] for line in self.lines if FATAL in line]
        said = [line for line in self.lines if _RETRYING not in line]
        return (fatal or said or self.lines or [f"restic exited with {self.code}"])[0]


class Restic:
    """Runs restic commands for one request: its environment, its output redacted; to
    an ``sftp:`` repository through ``ssh``."""

    def __init__(self, request: ResticRequest, cache: str, ssh: Ssh | None = None) -> None:
        self.redact = Redactor(request)
        self._env = environment(request, cache)
        self._ssh = ssh

    def run(self, args: list[str], *, quiet: bool = False) -> Finished:
        """Run ``restic ARGS`` to its end, saying its stderr (``quiet``: only keeping it);
        a restic that cannot start is a ResticError. A SIGTERM meanwhile (the run's
        container stopped) reaches restic as the SIGINT on which it removes its lock."""
        try:
            process = subprocess.Popen(
                [RESTIC, *(self._ssh.options() if self._ssh else []), *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self._env,
                text=True,
                errors="replace",
            )
        except OSError as e:
            raise ResticError(f"cannot start {RESTIC}: {e.strerror or e}") from None
        finished = Finished(0)
        reader = threading.Thread(
            target=self._read_stderr, args=(cast("IO[str]", process.stderr), finished, quiet)
        )
        reader.start()

        def interrupt(*_: object) -> None:
            finished.interrupted = True
            process.send_signal(signal.SIGINT)

        stop = signal.signal(signal.SIGTERM, interrupt)
        try:
            _read_stdout(cast("IO[str]", process.stdout), finished)
            reader.join()
            finished.code = process.wait()
        finally:
            signal.signal(signal.SIGTERM, stop or signal.SIG_DFL)
        if finished.code != 0 and self._ssh is not None:
            finished.refusal = self._ssh.refusal()
        return finished

    def _read_stderr(self, stream: IO[str], finished: Finished, quiet: bool) -> None:
        """Keep restic's stderr, redacted: its error messages and its lines; say each one
        unless ``quiet``."""
        for raw in stream:
            message = _json(raw)
            if isinstance(message, dict) and message.get("message_type") == "error":
                finished.errors.append(message)
                line = self.redact(describe(message))
            elif line := self.redact(_TERMINAL.sub("", raw)).strip():
                finished.lines.append(line)
            if line:
                finished.said.append(line)
            if line and not quiet:
                say(TOOL, line)


def _read_stdout(stream: IO[str], finished: Finished) -> None:
    """Keep restic's stdout: its JSON values (but progress messages) and its text lines."""
    for line in stream:
        value = _json(line)
        if value is None:
            finished.output += [line.strip()] if line.strip() else []
        elif not (isinstance(value, dict) and value.get("message_type") == "status"):
            finished.values.append(value)


def _json(line: str) -> object:
    """The JSON value of a line, or None when it is text."""
    if not line.startswith(("{", "[")):
        return None
    try:
        return json.loads(line)
    except ValueError:
        return None
