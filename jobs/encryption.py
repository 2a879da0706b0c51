"""A backup job's ``encrypt`` key: the age recipients its archives are encrypted to (public
keys: ``age1…`` X25519 recipients, ``ssh-ed25519``/``ssh-rsa`` keys), checked when the
config loads so a typo is an error naming the key, not a failed run at 3 am — or a
passphrase (a secret value, read at each run and given to the ops container on stdin)."""

from __future__ import annotations

import base64
import binascii
import re
from typing import TYPE_CHECKING

from pydantic import Field, field_validator, model_validator

from jobs.base import Model, SecretValue
from jobs.repository import secret_ref

if TYPE_CHECKING:
    from jobs.plan import SecretRef

_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_AGE_RECIPIENT = re.compile(r"age1[" + _BECH32 + r"]{58}")
"""``age1``, 32 bytes of X25519 public key in bech32 (52 characters), its 6-character
checksum."""
_SSH_RECIPIENT = re.compile(r"(ssh-ed25519|ssh-rsa) ([A-Za-z0-9+/]+={0,2})( .*)?")


def _bech32_valid(text: str) -> bool:
    """BIP 173's checksum of a lower-case bech32 string (``hrp1data``)."""
    hrp, _, data = text.rpartition("1")
    values = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    values += [_BECH32.index(c) for c in data]
    check = 1
    generators = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    for value in values:
        top = check >> 25
        check = (check & 0x1FFFFFF) << 5 ^ value
        for bit, generator in enumerate(generators):
            check ^= generator if (top >> bit) & 1 else 0
    return check == 1


def recipient_problem(recipient: str) -> str | None:
    """Why ``recipient`` is not a public key age takes, or None."""
    if _AGE_RECIPIENT.fullmatch(recipient):
        return None if _bech32_valid(recipient) else "its checksum is wrong (a typo?)"
    if recipient.startswith("AGE-SECRET-KEY-"):
        return "this is an age secret key: give its public key (age-keygen -y), never the secret"
    ssh = _SSH_RECIPIENT.fullmatch(recipient)
    if ssh is None:
        return "not an age recipient ('age1…') or an ssh-ed25519/ssh-rsa public key"
    try:
        blob = base64.b64decode(ssh.group(2), validate=True)
    except binascii.Error:
        return "its key is not base64"
    kind = ssh.group(1).encode()
    if blob[4 : 4 + len(kind)] != kind or int.from_bytes(blob[:4], "big") != len(kind):
        return f"its key is not an {ssh.group(1)} key"
    return None


class Encryption(Model):
    """``encrypt``: exactly one of ``recipients`` (age public keys) and ``passphrase``."""

    recipients: list[str] | None = Field(
        None,
        min_length=1,
        description="age recipients the archives are encrypted to: 'age1…' or "
        "'ssh-ed25519 …'/'ssh-rsa …' public keys (their private keys restore)",
        examples=[["age1…", "ssh-ed25519 AAAA… ops@example"]],
    )
    passphrase: SecretValue | None = Field(
        None,
        description="a passphrase instead: text, { env = 'NAME' } or { file = '/run/secrets/x' }"
        ", read at each run (one line)",
        examples=[{"file": "/run/secrets/backup_passphrase"}],
    )

    @field_validator("recipients")
    @classmethod
    def _recipients(cls, value: list[str] | None) -> list[str] | None:
        for index, recipient in enumerate(value or []):
            problem = recipient_problem(recipient.strip())
            if problem is not None:
                shown = recipient if len(recipient) <= 24 else recipient[:20] + "…"  # noqa: PLR2004
                if recipient.startswith("AGE-SECRET-KEY-"):
                    shown = "AGE-SECRET-KEY-…"
                raise ValueError(f"recipients[{index}] {shown!r}: {problem}")
        return [r.strip() for r in value] if value is not None else None

    @model_validator(mode="after")
    def _one_of(self) -> Encryption:
        if (self.recipients is None) == (self.passphrase is None):
            raise ValueError("encrypt needs exactly one of recipients and passphrase")
        if isinstance(self.passphrase, str) and (
            not self.passphrase.strip() or "\n" in self.passphrase or "\r" in self.passphrase
        ):
            raise ValueError("encrypt.passphrase must be one line of text, not empty")
        return self


class EncryptKeys(Model):
    """The ``encrypt`` key of a backup into archives (mixed into ``BackupJob``)."""

    encrypt: Encryption | None = Field(
        None,
        description="age-encrypt the archives: { recipients = ['age1…'] } or "
        "{ passphrase = … } (not with repository)",
        examples=[{"recipients": ["age1…"]}],
    )

    def passphrase(self) -> SecretRef | str | None:
        """The archives' passphrase, as the step writes it on the tool's stdin: the text, or
        where the daemon reads it at run time; None without one."""
        value = self.encrypt.passphrase if self.encrypt is not None else None
        if value is None or isinstance(value, str):
            return value
        return secret_ref("encrypt.passphrase", value)
