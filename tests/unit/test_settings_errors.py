"""The config loader's errors: each problem is one line naming where it is, said once, and
no job is ever dropped without one."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

import pytest

from jobs.base import BaseJob
from jobs.kinds import KINDS
from scheduler.errors import ConfigError
from scheduler.settings import entries, load_config

if TYPE_CHECKING:
    from pathlib import Path

    from scheduler.schedule import Schedule

RUN = '[jobs.{name}]\nkind = "run"\nschedule = "@hourly"\nimage = "busybox"\n'
EXEC = '[jobs.{name}]\nkind = "exec"\nschedule = "@hourly"\ncontainer = "app"\ncommand = "true"\n'


def errors_of(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    return caught.value.errors


def test_a_config_path_that_is_missing_or_a_directory_is_one_error_saying_which(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.toml", {})
    assert caught.value.errors == [f"{tmp_path / 'nope.toml'}: the config file does not exist"]
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path, {})
    assert caught.value.errors == [f"{tmp_path}: the config file is not a file"]


def test_an_unknown_top_level_table_is_the_only_error(tmp_path: Path) -> None:
    """A typo in a table's name is one error; [daemon], [defaults] and the jobs are not
    reported again for it."""
    text = "[deamon]\nname = 'x'\n" + RUN.format(name="a")
    assert errors_of(tmp_path, text) == ["deamon: unknown key (did you mean `daemon`?)"]


def test_a_bad_job_name_is_refused_saying_what_a_name_may_hold(tmp_path: Path) -> None:
    assert errors_of(tmp_path, RUN.format(name='"bad name"')) == [
        (
            "jobs.bad name: a job name must start with a letter or digit and hold only letters, "
            "digits, '.', '_' and '-' (at most 63 characters)"
        )
    ]


def test_kind_in_defaults_is_the_only_error(tmp_path: Path) -> None:
    """``kind`` in [defaults] is refused once; no kind reports it again as a wrong kind."""
    text = '[defaults]\nkind = "run"\n' + RUN.format(name="a") + EXEC.format(name="e")
    assert errors_of(tmp_path, text) == ["defaults.kind: a job's kind cannot have a default"]


@pytest.mark.parametrize(
    ("default", "error"),
    [
        ('timeout = "soon"', "defaults.timeout: expected a duration such as '90s'"),
        ("labels = { team = 5 }", "defaults.labels.team: expected a string"),
        (
            "retry_exit_codes = [300]",
            "defaults.retry_exit_codes[0]: must be at most 255",
        ),
        ('volumes = ["data:/data", 5]', "defaults.volumes[1]: expected a string"),
    ],
)
def test_a_bad_default_is_reported_once_under_defaults_whatever_its_shape(
    tmp_path: Path, default: str, error: str
) -> None:
    """A bad value in [defaults], a scalar or one inside a table or a list, is one error
    under defaults: never again for each job (of each kind) that would inherit it."""
    text = f"[defaults]\n{default}\n" + RUN.format(name="a") + RUN.format(name="b")
    text += EXEC.format(name="e")
    errors = errors_of(tmp_path, text)
    assert len(errors) == 1, errors
    assert errors[0].startswith(error), errors


def test_a_job_whose_schedule_fails_without_a_reason_is_still_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No job vanishes silently: should reading a schedule fail without a ScheduleError
    (a parser bug), the job is refused with an error naming its schedule."""

    def broken(expression: str, timezone: str = "UTC") -> Schedule:
        raise KeyError(expression)

    monkeypatch.setattr(entries, "parse_schedule", broken)
    text = RUN.format(name="a")
    assert errors_of(tmp_path, text) == ["jobs.a.schedule: cannot be read"]


class _Unlisted(BaseJob):
    """A kind in the registry that the Job union lacks (a kind added halfway)."""

    KIND: ClassVar[str] = "unlisted"
    kind: Literal["unlisted"]


def test_a_kind_registered_but_missing_from_the_job_union_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registry and the Job union grow together; a job of a kind only the registry knows
    is refused with an error naming it, not loaded as something the daemon cannot run."""
    monkeypatch.setitem(KINDS, "unlisted", _Unlisted)
    text = '[jobs.u]\nkind = "unlisted"\nschedule = "@hourly"\n' + RUN.format(name="a")
    assert errors_of(tmp_path, text) == [
        "jobs.u.kind: kind 'unlisted' is registered but not in the Job union"
    ]


@pytest.mark.parametrize("zone", ["Europe", "America/Argentina", "a" * 300])
def test_a_time_zone_that_names_a_directory_or_is_too_long_is_an_unknown_time_zone(
    tmp_path: Path, zone: str
) -> None:
    """A zone the time zone database cannot open (a region's directory, a name too long for
    a file) is refused naming the key, like any unknown zone, not a crash of the loader."""
    text = RUN.format(name="a") + f'timezone = "{zone}"\n'
    assert errors_of(tmp_path, text) == [
        f"jobs.a.timezone: unknown time zone {zone!r} (use an IANA name such as 'Europe/Berlin')"
    ]
