"""The config's TOML read one job table at a time gives what tomllib gives for the whole."""

from __future__ import annotations

import random
import tomllib
from collections.abc import Callable
from typing import Any, cast

import pytest

from scheduler.settings.tables import toml_tables

HEAD = '[daemon]\nname = "d"\n\n[defaults]\ntimezone = "UTC"\n\n'
RUN = 'kind = "run"\nschedule = "@daily"\nimage = "busybox"\n'

SAME = {
    "jobs only": f"[jobs.a]\n{RUN}\n[jobs.b]\n{RUN}",
    "head, comments, a quoted name": (
        f'{HEAD}[jobs.a] # first\n{RUN}\n[jobs."b.c"]\n{RUN}# the end\n'
    ),
    "sub-tables and arrays of tables": (
        f"[jobs.a]\n{RUN}[jobs.a.notify]\non = ['failure']\n[jobs.a.env]\nX = '1'\n"
        '[jobs.b]\nkind = "backup"\nschedule = "@daily"\n'
        '[[jobs.b.pre_exec]]\ncontainer = "app"\ncommand = "sync"\n'
    ),
    "[defaults] below the jobs": f"[jobs.a]\n{RUN}\n[defaults]\nretries = 1\n",
    "a sub-table of an earlier job below another": (
        f"[jobs.a]\n{RUN}[jobs.b]\n{RUN}[jobs.a.notify]\non = ['failure']\n"
    ),
    "a header line inside a multi-line string": (
        f'[jobs.a]\n{RUN}description = """\n[jobs.b]\n"""\n[jobs.c]\n{RUN}'
    ),
    "a header line inside a literal multi-line string": (
        f"[jobs.a]\n{RUN}description = '''\n[jobs.b]\nkind = 1\n'''\n"
    ),
    "a [jobs] table above the headers": f'[jobs]\nx.kind = "run"\n[jobs.a]\n{RUN}',
    "dotted keys in a job": f'[jobs.a]\n{RUN}notify.on = ["failure"]\nenv.X = "1"\n[jobs.b]\n{RUN}',
    "CRLF line ends": f"[jobs.a]\n{RUN}\n[jobs.b] # b\n{RUN}".replace("\n", "\r\n"),
    "values of every type": (
        "[jobs.a]\nn = 1\nf = 1.5\nt = true\nd = 2027-01-01T03:00:00+01:00\n"
        "l = [1, [2, 3]]\ni = { x = 1, y = [] }\n"
    ),
    "no jobs": HEAD,
}

ERRORS = {
    "a job defined twice": f"[jobs.a]\n{RUN}\n[jobs.b]\n{RUN}\n[jobs.a]\n{RUN}",
    "a sub-table defined twice across jobs": (
        f"[jobs.a]\n{RUN}[jobs.a.env]\nX='1'\n[jobs.b]\n{RUN}[jobs.a.env]\nY='2'\n"
    ),
    "an inline jobs table and a header": f"jobs = {{}}\n[jobs.a]\n{RUN}",
    "a key of a job given twice": f"[jobs.a]\n{RUN}\n[jobs.b]\n{RUN}image = 'x'\n",
    "a bad value in the middle job": f"[jobs.a]\n{RUN}\n[jobs.b]\nkind = run\n[jobs.c]\n{RUN}",
    "an unterminated string in the head": f'name = "d\n[jobs.a]\n{RUN}',
    "an unterminated array in a job": f"[jobs.a]\n{RUN}command = [\n[jobs.b]\n{RUN}",
}


READ_BY_PARTS = {
    "jobs only",
    "head, comments, a quoted name",
    "sub-tables and arrays of tables",
    "dotted keys in a job",
    "CRLF line ends",
}
"""Files read job by job (the others, whole): their jobs share one ``schedule`` key."""


@pytest.mark.parametrize(("case", "text"), SAME.items(), ids=SAME.keys())
def test_the_tables_are_those_of_the_whole_file(case: str, text: str) -> None:
    """Whatever the file holds around and inside its job tables, the result is tomllib's
    for the whole text, with the jobs in the file's order; a file of plain job tables is
    read one job at a time."""
    expected = tomllib.loads(text)
    found = toml_tables(text)
    assert found == expected
    assert list(found.get("jobs", {})) == list(expected.get("jobs", {}))
    keys = [key for table in found.get("jobs", {}).values() for key in table if key == "schedule"]
    assert (len(keys) > 1 and all(key is keys[0] for key in keys)) == (case in READ_BY_PARTS)


@pytest.mark.parametrize("text", ERRORS.values(), ids=ERRORS.keys())
def test_an_error_is_that_of_the_whole_file(text: str) -> None:
    """A file tomllib refuses is refused with tomllib's error for the whole text (its line
    and column), never read part by part."""
    with pytest.raises(tomllib.TOMLDecodeError) as whole:
        tomllib.loads(text)
    with pytest.raises(tomllib.TOMLDecodeError) as parts:
        toml_tables(text)
    assert str(parts.value) == str(whole.value)


def test_the_jobs_share_their_equal_keys_and_texts() -> None:
    """Two jobs with the same keys and values hold one object of each key and text."""
    jobs = toml_tables(f"[jobs.a]\n{RUN}command = ['sh', '-c']\n[jobs.b]\n{RUN}command = ['sh']\n")[
        "jobs"
    ]
    a, b = jobs["a"], jobs["b"]
    assert a["image"] is b["image"]
    assert a["command"][0] is b["command"][0]
    keys_a = {key: key for key in a}
    assert all(keys_a[key] is key for key in b)


NAMES = ("a", "b", "a-b", "x_1", "é", "a.b", "jobs")
HEADERS = (
    "[jobs.{n}]",
    '[jobs."{n}"]',
    "[jobs.'{n}']",
    "[ jobs.{n} ]",
    "[jobs . {n}]",
    "[jobs.{n}]\t",
    "[jobs.{n}]  # c",
    "[jobs.{n}]#",
    "  [jobs.{n}]",
    '[jobs."{n}\\u0041"]',
    "[jobs.{n}.env]",
    "[[jobs.{n}.pre_exec]]",
    "[defaults]",
    "[daemon]",
    "[jobs]",
    "[[jobs]]",
    "\ufeff[jobs.{n}]",
)
LINES = (
    "image = 'i'",
    "env.X = '1'",
    "{n}.k = 3",
    "jobs.a = 1",
    '"jobs" = 1',
    "'k.q' = 1",
    "n = 3 # c",
    "l = [\n  1,\n  2,\n]",
    "i = { a = 1, b = [] }",
    's = """\n[jobs.z]\n"""',
    "t = '''\n[jobs.y]\n'''",
    "# [jobs.q]",
    "",
    "k = 'v # no comment'",
)
ODD_LINES = ("arr = [", "]", 's = """', '"""', "t = '''", "'''")
"""Lines that open or close a multi-line string or array (a header may then be inside)."""


def _generated(rng: random.Random) -> str:
    """A TOML text of job tables in every shape: mostly plain ones, with headers, keys and
    lines (unterminated strings and arrays too) from those above around and among them."""
    parts = ["[daemon]\nname = 'd'"] if rng.random() < 0.5 else []
    for i in range(rng.randint(1, 6)):
        n = rng.choice(NAMES) if rng.random() < 0.3 else f"j{i}"
        header = "[jobs.{n}]" if rng.random() < 0.7 else rng.choice(HEADERS)
        parts += [header.replace("{n}", n), "kind = 'run'"]
        for _ in range(rng.randint(0, 4)):
            line = rng.choice(LINES if rng.random() < 0.9 else ODD_LINES)
            parts.append(line.replace("{n}", rng.choice(NAMES)))
    eol = "\r\n" if rng.random() < 0.3 else "\n"
    return eol.join(parts).replace("\n", eol) + rng.choice(("", eol))


def _read(read: Callable[[str], dict[str, Any]], text: str) -> tuple[str, object]:
    try:
        return "tables", read(text)
    except tomllib.TOMLDecodeError as e:
        return "error", str(e)


def test_generated_files_read_as_tomllib_reads_them() -> None:
    """Over 3,000 generated files (fixed seeds): the same tables as tomllib's for the
    whole text, or the same error; many of them read job by job (their jobs share one
    ``kind`` key)."""
    rng = random.Random(35)
    read = by_parts = 0
    for _ in range(3000):
        text = _generated(rng)
        found = _read(toml_tables, text)
        assert found == _read(tomllib.loads, text), text
        if found[0] == "tables":
            read += 1
            jobs = cast("dict[str, Any]", found[1]).get("jobs")
            tables = jobs.values() if isinstance(jobs, dict) else []
            keys = [k for t in tables if isinstance(t, dict) for k in t if k == "kind"]
            by_parts += len(keys) > 1 and all(key is keys[0] for key in keys)
    assert read > 500
    assert by_parts > 50
