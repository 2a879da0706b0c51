"""``CRONTAINER_*`` environment overrides: every bad variable is named, JSON values are read
as lists and tables."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from jobs.run import RunJob
from scheduler.errors import ConfigError
from scheduler.settings import load_config

if TYPE_CHECKING:
    from pathlib import Path

JOB = '[jobs.hello]\nkind = "run"\nschedule = "*/5 * * * *"\nimage = "busybox:latest"\n'


def load_job(tmp_path: Path, environ: dict[str, str]) -> RunJob:
    path = tmp_path / "c.toml"
    path.write_text(JOB)
    job = load_config(path, environ).jobs["hello"].job
    assert isinstance(job, RunJob)
    return job


def test_every_bad_environment_variable_is_named_not_only_the_first(tmp_path: Path) -> None:
    """Unknown variables and values that are not JSON are all reported at once (in the
    variables' order), whatever comes before them."""
    path = tmp_path / "c.toml"
    path.write_text(JOB)
    environ = {
        "CRONTAINER_A": "1",
        "CRONTAINER_B": "1",
        "CRONTAINER_DEFAULTS__LABELS": "{bad json",
        "CRONTAINER_DEFAULTS__VOLUMES": "[bad json",
        "CRONTAINER_Z": "1",
    }
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ)
    errors = caught.value.errors
    assert [e.split(": ", 1)[0] for e in errors] == list(environ)
    for error in (errors[0], errors[1], errors[4]):
        assert error.endswith(
            ": unknown environment variable (use CRONTAINER_DAEMON__<key> or "
            "CRONTAINER_DEFAULTS__<key> with a key of [daemon] or [defaults]; "
            "CRONTAINER_CONFIG names the config file)"
        )
    for error in errors[2:4]:
        assert ": a list or table value must be JSON: " in error


@pytest.mark.parametrize(
    ("var", "text", "attribute", "value"),
    [
        ("CRONTAINER_DEFAULTS__RETRY_EXIT_CODES", "[1, 2]", "retry_exit_codes", [1, 2]),
        ("CRONTAINER_DEFAULTS__VOLUMES", ' ["data:/data"]', "volumes", ["data:/data"]),
        ("CRONTAINER_DEFAULTS__LABELS", '{"team": "ops"}', "labels", {"team": "ops"}),
        ("CRONTAINER_DEFAULTS__LABELS", '\t {"team": "ops"} \n', "labels", {"team": "ops"}),
    ],
)
def test_a_list_or_table_value_is_read_as_json_blanks_around_too(
    tmp_path: Path, var: str, text: str, attribute: str, value: object
) -> None:
    """A value starting with ``[`` or ``{`` (after any blanks) is JSON: a list or a table."""
    assert getattr(load_job(tmp_path, {var: text}), attribute) == value
