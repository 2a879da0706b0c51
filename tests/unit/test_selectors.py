"""Container selectors: one syntax (a name, label=key, label=key=value,
compose=<project>/<service>), checked at load for every key that names a container."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from jobs.backup import BackupJob
from jobs.base import PlanContext
from jobs.exec import ExecJob
from jobs.plan import ExecCommand, RunContainer, WithStopped
from jobs.selectors import (
    COMPOSE_ONEOFF,
    COMPOSE_PROJECT,
    COMPOSE_SERVICE,
    FORMS,
    Selector,
    parse_selector,
)

from .configs import load_errors, load_job

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("app", Selector("app", name="app")),
        ("shop-db_1.x", Selector("shop-db_1.x", name="shop-db_1.x")),
        ("3f2a9c", Selector("3f2a9c", name="3f2a9c")),
        ("/app", Selector("/app", name="app")),  # as docker inspect prints a name
        ("label=role", Selector("label=role", labels=(("role", None),))),
        ("label=role=db", Selector("label=role=db", labels=(("role", "db"),))),
        ("label=role=", Selector("label=role=", labels=(("role", ""),))),
        ("label=a.b=x=y z", Selector("label=a.b=x=y z", labels=(("a.b", "x=y z"),))),
        (
            "compose=shop/db",
            Selector(
                "compose=shop/db",
                labels=(
                    (COMPOSE_PROJECT, "shop"),
                    (COMPOSE_SERVICE, "db"),
                    (COMPOSE_ONEOFF, "False"),  # not a `compose run` container
                ),
            ),
        ),
    ],
)
def test_each_form_parses_to_a_name_or_the_labels_it_needs(text: str, parsed: Selector) -> None:
    """A name selects by name; label= and compose= by labels (None: any value)."""
    assert parse_selector(text) == parsed


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "not a container name"),
        ("-app", "not a container name"),
        ("app:ro", "not a container name"),
        ("label:role=db", "not a container name"),
        ("my app", "not a container name"),
        ("label=", "a label selector needs a key"),
        ("label==db", "a label selector needs a key"),
        ("label=ro le=db", "a label selector needs a key"),
        ("label=role=a\nb", "a label selector needs a key"),
        ("compose=db", "a service alone could match other projects' containers"),
        ("compose=shop/", "a project and a service of letters"),
        ("compose=/db", "a project and a service of letters"),
        ("compose=shop/db/x", "a project and a service of letters"),
    ],
)
def test_a_malformed_selector_says_why_and_lists_the_forms(text: str, why: str) -> None:
    """Every refusal quotes the selector, says what is wrong and lists the accepted forms."""
    with pytest.raises(ValueError, match="write") as caught:
        parse_selector(text)
    message = str(caught.value)
    assert message.startswith(f"{text!r}: {why}")
    assert message.endswith(f"; write {FORMS}")


def test_compose_alone_points_to_the_label_that_selects_the_service_in_every_project() -> None:
    """compose=<service> is refused; the error names the label to use instead."""
    with pytest.raises(ValueError, match=r"'label=com\.docker\.compose\.service=db'"):
        parse_selector("compose=db")


BAD = "label:x"
BACKUP = 'kind = "backup"\ntarget = "t"\nvolumes_from = "db"\n'
ROTATE = 'kind = "rotate"\nvolumes_from = "app"\npaths = ["/l/*.log"]\nmax_size = "1MiB"\n'
RUN = 'command = "x"'
KEYS = [
    (f'kind = "exec"\ncontainer = "{BAD}"\ncommand = "true"\n', "container"),
    (f'kind = "run"\nimage = "busybox"\nvolumes_from = "{BAD}"\n', "volumes_from[0]"),
    (f'kind = "backup"\ntarget = "t"\nvolumes_from = ["db", "{BAD}"]\n', "volumes_from[1]"),
    (f'{BACKUP}stop = ["{BAD}"]\n', "stop[0]"),
    (f'{BACKUP}pre_exec = [{{ container = "{BAD}", command = "x" }}]\n', "pre_exec[0].container"),
    (
        f'{BACKUP}post_exec = [{{ container = "db", {RUN} }}, {{ container = "{BAD}", {RUN} }}]\n',
        "post_exec[1].container",
    ),
    (f'kind = "signal"\ncontainers = ["{BAD}"]\n', "containers[0]"),
    (f'kind = "logship"\nsink = {{ type = "stdout" }}\ncontainers = ["{BAD}"]\n', "containers[0]"),
    (f'{ROTATE}signal = {{ containers = ["{BAD}"] }}\n', "signal.containers[0]"),
    (f'{ROTATE}restart = ["{BAD}"]\n', "restart[0]"),
]
"""A job's keys with a bad selector, and where the error says it is."""


@pytest.mark.parametrize(("text", "where"), KEYS)
def test_validate_refuses_a_malformed_selector_in_every_key_that_names_a_container(
    tmp_path: Path, text: str, where: str
) -> None:
    """The error names the key (its path in the file) and lists the forms."""
    assert load_errors(tmp_path, '[jobs.j]\nschedule = "@daily"\n' + text) == [
        f"jobs.j.{where}: {BAD!r}: not a container name (letters, digits, '_', '.', '-'); write {FORMS}"
    ]


def test_every_form_is_accepted_where_a_container_is_named(tmp_path: Path) -> None:
    """exec, pre_exec/post_exec, volumes_from and stop take the forms signal and logship
    take; the plan carries them as written, for the engine to resolve at run time."""
    exec_job = load_job(
        tmp_path,
        '[jobs.x]\nkind = "exec"\nschedule = "@daily"\ncontainer = "compose=shop/db"\n'
        'command = "true"\n',
        "x",
        ExecJob,
    )
    (step,) = exec_job.plan(PlanContext("x", "ops")).steps
    assert step == ExecCommand("compose=shop/db", ("true",), key="exec container")
    backup = load_job(
        tmp_path,
        '[jobs.b]\nkind = "backup"\nschedule = "@daily"\ntarget = "t"\n'
        'volumes_from = ["label=backup=data", "compose=shop/files"]\n'
        'stop = ["label=role=app", "worker"]\n'
        'pre_exec = [{ container = "label=role=db", command = "sync" }]\n'
        'post_exec = [{ container = "compose=shop/db", command = "sync" }]\n',
        "b",
        BackupJob,
    )
    plan = backup.plan(PlanContext("b", "ops"))
    pre, middle = plan.steps
    assert isinstance(pre, ExecCommand)
    assert (pre.container, pre.key) == ("label=role=db", "pre_exec container")
    (post,) = plan.cleanup
    assert isinstance(post, ExecCommand)
    assert (post.container, post.key) == ("compose=shop/db", "post_exec container")
    assert isinstance(middle, WithStopped)
    assert middle.containers == ("label=role=app", "worker")
    (archive,) = middle.body
    assert isinstance(archive, RunContainer)
    spec = archive.spec
    assert spec.volumes_from == ("label=backup=data", "compose=shop/files")
    assert spec.volumes_from_read_only
