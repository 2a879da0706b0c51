"""The JSON Schema of the config file (``crontainer schema``), built from the models that
validate it."""

from __future__ import annotations

import functools
import operator
from typing import Annotated, Any

from pydantic import ConfigDict, Field, create_model

from jobs.kinds import KINDS, Job
from scheduler.settings.daemon import DaemonSettings


def config_schema() -> dict[str, Any]:
    """The JSON Schema of the config file (``crontainer schema``), from the same models
    that validate it: ``[daemon]``, ``[defaults]`` (any job key but ``kind``, all optional)
    and ``[jobs.<name>]`` (one of the kinds, chosen by ``kind``)."""
    choices: dict[str, list[Any]] = {}
    for kind in KINDS.values():
        for name, info in kind.model_fields.items():
            annotation: Any = info.annotation
            if info.metadata:
                annotation = Annotated[annotation, *info.metadata]
            if name != "kind" and repr(annotation) not in map(repr, choices.get(name, [])):
                choices.setdefault(name, []).append(annotation)
    optional: dict[str, Any] = {
        name: (functools.reduce(operator.or_, types) | None, None)
        for name, types in sorted(choices.items())
    }
    defaults = create_model("Defaults", __config__=ConfigDict(extra="forbid"), **optional)
    tables: dict[str, Any] = {
        "daemon": (DaemonSettings | None, None),
        "defaults": (defaults | None, None),
        "jobs": (dict[str, Annotated[Job, Field(discriminator="kind")]], {}),
    }
    config = create_model(
        "CrontainerConfig",
        __config__=ConfigDict(extra="forbid", title="crontainer configuration"),
        **tables,
    )
    schema = config.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
