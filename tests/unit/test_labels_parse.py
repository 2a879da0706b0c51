"""A container's labels as job tables (scheduler/labels/parse.py): values read as TOML
values else text, dotted keys as tables, and the labels of a job that cannot be read."""

from __future__ import annotations

import pytest

from scheduler.labels.parse import MAX_LABEL_VALUE, PREFIX, job_tables, label_value


def labels(**keys: str) -> dict[str, str]:
    """``crontainer.jobs.<key>`` labels, the key's ``__`` written for ``.``."""
    return {PREFIX + key.replace("__", "."): value for key, value in keys.items()}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", True),
        ("false", False),
        ("3", 3),
        ("2.5", 2.5),
        ('["sh", "-c", "echo hi"]', ["sh", "-c", "echo hi"]),
        ('{ on = ["failure"], url = "http://h" }', {"on": ["failure"], "url": "http://h"}),
        ('"true"', "true"),
        ('"3"', "3"),
        ("'*/5 * * * *'", "*/5 * * * *"),
    ],
)
def test_a_toml_value_is_read_as_one(text: str, value: object) -> None:
    """true, numbers, lists, inline tables; quoted text stays text (quotes removed)."""
    assert label_value(text) == value
    assert type(label_value(text)) is type(value)


@pytest.mark.parametrize(
    "text",
    [
        "*/10 * * * *",
        "@daily",
        "backup",
        "pg_dump -U app app",
        "",
        "1h",
        "v = 1",
        "1\nw = 2",
        "[1, 2",
        "[" * 2000,
    ],
)
def test_anything_else_is_text(text: str) -> None:
    """Text that is no TOML value (a cron line, a word, a command, nothing, a duration,
    more than one value, an unclosed or absurdly deep list) is taken as written."""
    assert label_value(text) == text


def test_jobs_of_a_container_as_tables() -> None:
    """Each job's keys as one table; dotted keys become nested tables; values as TOML."""
    found = job_tables(
        labels(
            backup__kind="backup",
            backup__schedule="0 3 * * *",
            backup__stop="true",
            backup__notify__on='["failure"]',
            backup__notify__url="http://hook",
            ping__command='["true"]',
            ping__schedule="@every 1m",
        )
    )
    assert found.problems == {}
    assert found.tables == {
        "backup": {
            "kind": "backup",
            "schedule": "0 3 * * *",
            "stop": True,
            "notify": {"on": ["failure"], "url": "http://hook"},
        },
        "ping": {"command": ["true"], "schedule": "@every 1m"},
    }


def test_labels_outside_the_prefix_are_ignored() -> None:
    """Other labels — Compose's, crontainer.* but not crontainer.jobs.*, a prefix without
    the dot — give no job and no problem."""
    found = job_tables(
        {
            "com.docker.compose.project": "app",
            "crontainer.job": "x",
            "crontainer.jobs": "x",
            "crontainer.daemon": "d",
            "crontainer.jobsx.a.schedule": "@daily",
            **labels(a__schedule="@daily"),
        }
    )
    assert (found.tables, found.problems) == ({"a": {"schedule": "@daily"}}, {})


def test_no_labels_no_jobs() -> None:
    """A container without job labels declares nothing."""
    found = job_tables({})
    assert (found.tables, found.problems) == ({}, {})


def test_a_key_given_as_a_value_and_as_a_table_is_a_problem() -> None:
    """notify = … and notify.on = …: the job is left out, the clash named; the
    container's other jobs stay."""
    found = job_tables(
        labels(x__notify="off", x__notify__on='["failure"]', x__schedule="@daily", y__a="1")
    )
    assert found.problems == {
        "x": [("notify.on", "notify is given both as a value and as a table")]
    }
    assert found.tables == {"y": {"a": 1}}


@pytest.mark.parametrize(
    ("label", "job", "key", "reason"),
    [
        (
            PREFIX + ".schedule",
            "",
            "schedule",
            "'' is not a job name (a letter or digit, then letters, digits, '_' or '-'; no dots)",
        ),
        (
            PREFIX + "_x.schedule",
            "_x",
            "schedule",
            "'_x' is not a job name (a letter or digit, then letters, digits, '_' or '-'; no dots)",
        ),
        (
            PREFIX + "a b.schedule",
            "a b",
            "schedule",
            (
                "'a b' is not a job name (a letter or digit, then letters, digits, '_' or '-'; "
                "no dots)"
            ),
        ),
        (
            PREFIX + "x" * 64 + ".schedule",
            "x" * 64,
            "schedule",
            (
                f"'{'x' * 64}' is not a job name (a letter or digit, then letters, digits, '_' or "
                "'-'; no dots)"
            ),
        ),
        (
            PREFIX + "x",
            "x",
            PREFIX + "x",
            f"no key: write {PREFIX}x.<key>, e.g. {PREFIX}x.schedule",
        ),
        (
            PREFIX + "x.",
            "x",
            PREFIX + "x.",
            f"no key: write {PREFIX}x.<key>, e.g. {PREFIX}x.schedule",
        ),
        (
            PREFIX + "x.sched ule",
            "x",
            "sched ule",
            "'sched ule' is not a key (letters, digits, '_' and '-', tables joined by '.')",
        ),
        (
            PREFIX + "x.notify..on",
            "x",
            "notify..on",
            "'notify..on' is not a key (letters, digits, '_' and '-', tables joined by '.')",
        ),
        (
            PREFIX + "x.notify.",
            "x",
            "notify.",
            "'notify.' is not a key (letters, digits, '_' and '-', tables joined by '.')",
        ),
    ],
)
def test_a_label_that_cannot_be_read_names_its_job_and_key(
    label: str, job: str, key: str, reason: str
) -> None:
    """A bad job name (empty, a leading '_', a space, over 63 characters), no key, a bad
    key: a problem naming the key (the label when there is no key); that job is left out,
    the container's other jobs stay."""
    found = job_tables({label: "1", PREFIX + "ok.schedule": "@daily", PREFIX + f"{job}.z": "2"})
    assert found.problems[job][0] == (key, reason)
    assert job not in found.tables
    assert found.tables["ok"] == {"schedule": "@daily"}


def test_a_job_name_may_not_hold_a_dot() -> None:
    """The first dot after the prefix ends the job's name: ``my.job.schedule`` is the key
    ``job.schedule`` of job ``my`` (the kind's model then refuses the unknown key)."""
    assert job_tables(labels(my__job__schedule="@daily")).tables == {
        "my": {"job": {"schedule": "@daily"}}
    }


def test_an_over_long_value_is_a_problem() -> None:
    """A value over MAX_LABEL_VALUE characters: refused with its length; one at the limit
    is read."""
    found = job_tables(
        labels(x__command="a" * (MAX_LABEL_VALUE + 1), y__command="a" * MAX_LABEL_VALUE)
    )
    assert found.problems == {
        "x": [
            (
                "command",
                (
                    f"the value is {MAX_LABEL_VALUE + 1} characters; at most {MAX_LABEL_VALUE} "
                    "are read"
                ),
            )
        ]
    }
    assert found.tables == {"y": {"command": "a" * MAX_LABEL_VALUE}}


def test_every_problem_of_a_job_is_kept() -> None:
    """Two bad labels of one job: both named (in the labels' order)."""
    found = job_tables(labels(x__a__="1", x__b_c="1", **{"x__d e": "1"}))
    assert [key for key, _ in found.problems["x"]] == ["a.", "d e"]


def test_an_inline_table_is_not_extended_by_dotted_keys() -> None:
    """notify = { on = … } and notify.url = …: a clash, as in TOML (inline tables are
    self-contained) — the dotted key was merged into the inline table before; a table made
    by dotted keys alone still takes more of them."""
    found = job_tables(
        labels(
            x__notify='{ on = ["failure"] }', x__notify__url="http://h", y__a__b="1", y__a__c="2"
        )
    )
    assert found.problems == {
        "x": [("notify.url", "notify is given both as a value and as a table")]
    }
    assert found.tables == {"y": {"a": {"b": 1, "c": 2}}}
