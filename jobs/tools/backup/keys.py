"""What age encrypts and decrypts with, handed over without argv, environment or disk: an
identity file's content in a memory file (``--identity=/dev/fd/N``), or a passphrase typed
into age's own pseudo-terminal — age 1.1 reads a passphrase only from a terminal."""

from __future__ import annotations

import os
import pty
import sys

from jobs.tools.backup.processes import ToolError

AGE_DECRYPT = ["age", "--decrypt"]
ATTACH = (
    "import fcntl, os, sys, termios; fd = int(sys.argv[1]); "
    "fcntl.ioctl(fd, termios.TIOCSCTTY, 0); os.execvp(sys.argv[2], sys.argv[2:])"
)
"""Run in the new session before the program: the terminal (its descriptor given) becomes
the session's controlling one, then the program replaces this Python (no ``preexec_fn``,
which is unsafe in a process with threads). The descriptor stays open in the program: the
terminal is never without an open slave side between here and age opening ``/dev/tty``."""


class Terminal:
    """A pseudo-terminal that becomes a program's controlling terminal (its ``/dev/tty``),
    with ``answer`` already typed into it. Kept open until the program has ended: closing
    it would hang the program up."""

    def __init__(self, answer: bytes) -> None:
        self.master, self.slave = pty.openpty()
        self.answer = answer

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` run with this terminal as its controlling one (started in a new
        session, the terminal's descriptor passed)."""
        return [sys.executable, "-c", ATTACH, str(self.slave), *argv]

    def started(self) -> None:
        """In the parent, once the child runs: type the answer (the terminal's buffer holds
        it until age reads it, echo off)."""
        os.close(self.slave)
        self.slave = -1
        os.write(self.master, self.answer)

    def close(self) -> None:
        for fd in (self.master, self.slave):
            if fd >= 0:
                os.close(fd)
        self.master = self.slave = -1


class AgeKey:
    """What decrypts an ``….age`` archive: an identity file's content, or a passphrase."""

    def __init__(self, *, identity: bytes | None = None, passphrase: bytes | None = None) -> None:
        self.passphrase = passphrase
        self.fd = -1
        if identity is not None:
            self.fd = os.memfd_create("age-identity")
            os.write(self.fd, identity)

    @property
    def what(self) -> str:
        """How the error of a key that does not fit names it."""
        return "the passphrase" if self.passphrase is not None else "the identity"

    def argv(self) -> list[str]:
        """age's command line decrypting its stdin with this key."""
        return [*AGE_DECRYPT, *([f"--identity=/dev/fd/{self.fd}"] if self.fd >= 0 else [])]

    def pass_fds(self) -> tuple[int, ...]:
        return (self.fd,) if self.fd >= 0 else ()

    def terminal(self) -> Terminal | None:
        """A new terminal typing the passphrase once (each age process needs its own)."""
        return None if self.passphrase is None else Terminal(self.passphrase + b"\n")

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def encrypting(recipients: list[str], passphrase: bytes | None) -> tuple[list[str], bytes | None]:
    """age's command line encrypting its stdin, and what to type into its terminal: the
    passphrase twice (age asks it again to confirm), or nothing for public keys."""
    if passphrase is not None:
        return ["age", "--encrypt", "--passphrase"], (passphrase + b"\n") * 2
    return ["age", "--encrypt", *(f"--recipient={r}" for r in recipients)], None


def one_line(passphrase: bytes) -> bytes:
    """The passphrase without its newline: one line, not empty (typed into age's terminal,
    it cannot hold more); ToolError otherwise."""
    passphrase = passphrase.removesuffix(b"\n")
    if not passphrase.strip():
        raise ToolError("the passphrase is empty")
    if b"\n" in passphrase or b"\r" in passphrase:
        raise ToolError("the passphrase on stdin is more than one line")
    return passphrase


def restore_key(*, identity: bytes | None, passphrase: bytes | None) -> AgeKey | None:
    """What a restore decrypts with: the identity file's content if given, else the
    passphrase (one line); None for neither. ToolError for an empty identity."""
    if identity is not None:
        if not identity.strip():
            raise ToolError("no age identity on stdin")
        return AgeKey(identity=identity)
    return None if passphrase is None else AgeKey(passphrase=one_line(passphrase))
