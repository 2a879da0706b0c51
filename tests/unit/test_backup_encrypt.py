"""A backup job's ``encrypt`` key: recipients checked at load (errors name the key and the
index), refused with a repository, taken from [defaults] by archive backups only; the plan
asks the tool to encrypt to them."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.base import PlanContext
from jobs.encryption import recipient_problem
from jobs.plan import RunContainer, SecretRef
from jobs.protocol.backup import PROGRAM, CreateRequest, parse_request

from .configs import BACKUP_BASE, backup_errors, load_backup

BASE = BACKUP_BASE
TARGET = 'target = "backups"\n'
AGE = "age19p3y6czesemadevw9tz7yqm2cv6xdegzmr5ddt8u2hr0fxhxg4hszwx859"
SSH = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE66sETQA59Yuit2Qix9G78wdvSIHYpEG71iaCk74Jz/ ops@backup"


load, errors_of = load_backup, backup_errors


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            TARGET + "encrypt = {}",
            "jobs.b.encrypt: encrypt needs exactly one of recipients and passphrase",
        ),
        (
            TARGET + f'encrypt = {{ recipients = ["{AGE}"], passphrase = "x" }}',
            "jobs.b.encrypt: encrypt needs exactly one of recipients and passphrase",
        ),
        (
            TARGET + "encrypt = { recipients = [] }",
            "jobs.b.encrypt.recipients: expected at least 1 item",
        ),
        (
            TARGET + f'encrypt = {{ recipients = ["{AGE}", "{AGE[:-1]}q"] }}',
            (
                "jobs.b.encrypt.recipients: recipients[1] 'age19p3y6czesemadevw…': its checksum "
                "is wrong (a typo?)"
            ),
        ),
        (
            TARGET + 'encrypt = { recipients = ["age1short"] }',
            "jobs.b.encrypt.recipients: recipients[0] 'age1short': not an age recipient",
        ),
        (
            TARGET + 'encrypt = { recipients = ["AGE-SECRET-KEY-1LQWSR8PM2FJH2GR2W52LR7L8F"] }',
            (
                "jobs.b.encrypt.recipients: recipients[0] 'AGE-SECRET-KEY-…': this is an age "
                "secret key: give its public key (age-keygen -y), never the secret"
            ),
        ),
        (
            TARGET + f'encrypt = {{ recipients = ["{SSH.replace("ed25519", "rsa", 1)}"] }}',
            (
                "jobs.b.encrypt.recipients: recipients[0] 'ssh-rsa AAAAC3NzaC1l…': its key is not "
                "an ssh-rsa key"
            ),
        ),
        (
            TARGET + 'encrypt = { recipients = ["ssh-ed25519 not*base64"] }',
            "recipients[0] 'ssh-ed25519 not*base64': not an age recipient",
        ),
        (
            TARGET + 'encrypt = { passphrase = "" }',
            "jobs.b.encrypt: encrypt.passphrase must be one line of text, not empty",
        ),
        (
            TARGET + 'encrypt = { passphrase = "two\\nlines" }',
            "jobs.b.encrypt: encrypt.passphrase must be one line of text, not empty",
        ),
        (
            TARGET + 'encrypt = { passphrase = { file = "age.txt" } }',
            "jobs.b.encrypt.passphrase.file: file 'age.txt' must be an absolute path",
        ),
        (
            TARGET + f'encrypt = {{ recipients = ["{AGE}"], armor = true }}',
            "jobs.b.encrypt.armor: unknown key",
        ),
        (
            (
                'repository = "/r"\npassword = "p"\nvolumes = ["r:/r"]\n'
                f'encrypt = {{ recipients = ["{AGE}"] }}'
            ),
            (
                "jobs.b: encrypt is not a key of a backup into a repository: restic encrypts the "
                "repository with its password"
            ),
        ),
    ],
)
def test_bad_encrypt_is_refused_naming_the_key(tmp_path: Path, extra: str, message: str) -> None:
    errors = errors_of(tmp_path, extra)
    assert any(message in e for e in errors), errors


def test_a_secret_key_given_as_recipient_is_never_echoed(tmp_path: Path) -> None:
    secret = "AGE-SECRET-KEY-1LQWSR8PM2FJH2GR2W52LR7L8FU3HA6NFMNFET7AZVFDYVSKH82USWPE576"  # noqa: S105 - a throwaway key
    errors = errors_of(tmp_path, TARGET + f'encrypt = {{ recipients = ["{secret}"] }}')
    assert errors
    assert all(secret[16:] not in e for e in errors), errors


@pytest.mark.parametrize("recipient", [AGE, SSH, SSH.rsplit(" ", 1)[0]])
def test_age_and_ssh_public_keys_are_recipients(recipient: str) -> None:
    assert recipient_problem(recipient) is None


def test_the_plan_asks_the_tool_to_encrypt_to_the_recipients(tmp_path: Path) -> None:
    job = load(tmp_path, TARGET + f'encrypt = {{ recipients = ["{AGE}", "{SSH}"] }}')
    step = job.plan(PlanContext("b", "ops:1")).steps[0]
    assert isinstance(step, RunContainer)
    command = step.spec.command or ()
    request = parse_request(command[len(PROGRAM) :])
    assert isinstance(request, CreateRequest)
    assert request.recipients == (AGE, SSH)
    assert not step.spec.stdin  # nothing secret to give: public keys only


def test_encrypt_in_defaults_goes_to_archive_backups_only(tmp_path: Path) -> None:
    defaults = f'[defaults]\ntarget = "backups"\nencrypt = {{ recipients = ["{AGE}"] }}\n'
    archives = load(tmp_path, "", defaults + BASE)
    assert archives.encrypt is not None
    assert archives.encrypt.recipients == [AGE]
    repository = load(
        tmp_path, 'repository = "rest:http://h:8000/x"\npassword = "p"\n', defaults + BASE
    )
    assert repository.encrypt is None
    plain = load(tmp_path, TARGET)
    request = plain.request("b")
    assert request.recipients == ()
    assert "--recipient" not in request.argv()


def test_a_passphrase_reaches_the_tool_on_stdin_only(tmp_path: Path) -> None:
    """{ file } / { env }: the daemon reads it at run time; the ops container's command,
    environment and labels never hold it; the tool is told to read it on stdin."""
    job = load(tmp_path, TARGET + 'encrypt = { passphrase = { file = "/run/secrets/age" } }')
    step = job.plan(PlanContext("b", "ops:1")).steps[0]
    assert isinstance(step, RunContainer)
    assert step.spec.stdin
    assert step.stdin_secret == SecretRef("encrypt.passphrase", file="/run/secrets/age")
    request = parse_request((step.spec.command or ())[len(PROGRAM) :])
    assert isinstance(request, CreateRequest)
    assert (request.passphrase, request.recipients) == (True, ())
    text = load(tmp_path, TARGET + 'encrypt = { passphrase = "s3cret words" }')
    text_step = text.plan(PlanContext("b", "ops:1")).steps[0]
    assert isinstance(text_step, RunContainer)
    assert text_step.stdin_secret == "s3cret words"  # noqa: S105 - a test value
    assert "s3cret words" not in repr(
        (text_step.spec.command, text_step.spec.env, text_step.spec.labels)
    )
