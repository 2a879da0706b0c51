"""The tool's command: the request from the first line of stdin, the run, its result out.

``python -m jobs.tools.restic`` runs ``main``: exit 0 with the result as a control line on
stderr; 1 when the run failed, its last diagnostic saying why; 2 when the request cannot
be read, its diagnostic naming the field."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from jobs.protocol.fields import RequestError
from jobs.protocol.lines import emit, say
from jobs.protocol.restic import ResticRequest
from jobs.tools.restic.restoring import job_snapshots, restore
from jobs.tools.restic.runner import TOOL, Redactor, ResticError
from jobs.tools.restic.steps import opened, run

if TYPE_CHECKING:
    from collections.abc import Mapping


def read_request(line: str) -> ResticRequest:
    """The request of stdin's first line; RequestError names what is wrong with it."""
    try:
        value = json.loads(line)
    except ValueError:
        raise RequestError("the first line of stdin is not the JSON request") from None
    request = ResticRequest.parse(value)
    if request.password is None:
        raise RequestError("request field 'password': expected a string, got nothing")
    return request


def answer(request: ResticRequest) -> Mapping[str, object]:
    """What the request's command gives: a backup run's result, the job's snapshots
    (``{"snapshots": [...]}``, newest first), or a restore's result."""
    if request.command == "backup":
        return run(request, datetime.now(UTC)).to_json()
    with opened(request) as restic:
        if request.command == "snapshots":
            return {"snapshots": [s.to_json() for s in job_snapshots(restic, request)]}
        return restore(restic, request).to_json()


def main() -> int:
    """Read the request, run, report the result; see the module's exit codes. The last
    diagnostic, redacted too, says why a run failed."""
    request = None
    try:
        request = read_request(sys.stdin.readline())
        result = answer(request)
    except (RequestError, ResticError) as e:
        say(TOOL, Redactor(request)(str(e)) if request else str(e))
        return 2 if isinstance(e, RequestError) else 1
    emit({"result": dict(result)})
    return 0
