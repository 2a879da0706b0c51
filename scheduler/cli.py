"""The ``crontainer`` command.

Exit codes: 0 success; 1 runtime failure (the engine stayed unreachable at
start, the daemon crashed); 2 bad config or usage (an unknown job included);
141 stdout was closed early (``crontainer schema | head``), as a tool killed by
SIGPIPE. docs/reference.md lists them per command (from scheduler/exits.py).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from scheduler import heartbeat, locations
from scheduler.errors import ConfigError, EngineError
from scheduler.exits import (
    EXIT_BROKEN_PIPE,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from scheduler.engine import Engine
    from scheduler.history import History, RunRecord
    from scheduler.labels.scan import LabelJobs, Refusal
    from scheduler.settings import Config, JobEntry
    from scheduler.settings.shell import KeyWarning

NEXT_RUNS = 3


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415 - see _Version

    try:
        return version("crontainer")
    except PackageNotFoundError:
        return "unknown"


class _Version(argparse.Action):
    """--version, its package metadata read only when asked (not by every health check)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **_given: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_args: object, **_kw: object) -> None:
        print(f"crontainer {_version()}")
        parser.exit()


CONFIG_HELP = "the TOML config (default: $CRONTAINER_CONFIG, else /etc/crontainer/config.toml)"


def _parser() -> argparse.ArgumentParser:
    # --config is global: before the command or after it. The command's copy has no
    # default, so that it does not overwrite a --config given before the command.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help=CONFIG_HELP)
    parser = argparse.ArgumentParser(
        prog="crontainer", description="Run ops containers on a schedule through the Docker API."
    )
    parser.add_argument("--version", action=_Version)
    parser.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("run", parents=[common], help="run the daemon until SIGTERM")
    validate = commands.add_parser(
        "validate", parents=[common], help="check the config and print each job's next runs"
    )
    validate.add_argument("--json", action="store_true", help="machine-readable output")
    validate.add_argument(
        "--labels",
        action="store_true",
        help="also check the job labels of the engine's containers against the fence "
        "(label_filter, label_kinds, label_allow) and list the label jobs the daemon would take",
    )
    state = argparse.ArgumentParser(add_help=False)
    state.add_argument(
        "--state-dir", metavar="DIR", help="the state directory (default: from the config)"
    )
    state.add_argument("--json", action="store_true", help="machine-readable output")
    history = commands.add_parser(
        "history", parents=[common, state], help="print recorded runs, newest first"
    )
    history.add_argument("job", nargs="?", help="only this job's runs")
    history.add_argument("--limit", type=int, default=20, help="at most this many rows (20)")
    history.add_argument(
        "--cluster",
        action="store_true",
        help='ha = "swarm": every replica\'s runs, read from the claims in the Swarm (the '
        "engine of DOCKER_HOST, a manager), newest fire first",
    )
    commands.add_parser(
        "jobs", parents=[common, state], help="print each job: schedule, next run, last outcome"
    )
    trigger = commands.add_parser(
        "trigger", parents=[common], help="make the running daemon run a job now"
    )
    trigger.add_argument("job", help="the job to run")
    trigger.add_argument(
        "--state-dir", metavar="DIR", help="the state directory (default: from the config)"
    )
    listing = commands.add_parser(
        "backups", parents=[common], help="list a backup job's archives or restic snapshots"
    )
    listing.add_argument("job")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.add_argument(
        "--from", dest="remote", metavar="REMOTE", help="the archives on this remote (copy_to)"
    )
    back = commands.add_parser(
        "restore", parents=[common], help="restore a backup job's archive or snapshot"
    )
    back.add_argument("job")
    back.add_argument("--archive", default="latest", help="an archive, a snapshot id, or latest")
    back.add_argument(
        "--from", dest="remote", metavar="REMOTE", help="fetch the archive from this remote"
    )
    back.add_argument(
        "--to",
        action="append",
        default=[],
        metavar="PATH=VOLUME",
        help="restore the archived PATH into VOLUME instead of the source (repeatable)",
    )
    back.add_argument(
        "--identity",
        metavar="FILE",
        help="an age identity file (read here, given to the ops container on its stdin) to "
        "restore an encrypted archive",
    )
    output = commands.add_parser(
        "logs",
        parents=[common],
        help="print a run's whole output, kept by the job's output table",
    )
    output.add_argument("job")
    output.add_argument("run", nargs="?", default="latest", help="a run id, or latest (default)")
    output.add_argument(
        "--follow", "-f", action="store_true", help="print the lines as they come until it ends"
    )
    output.add_argument(
        "--state-dir", metavar="DIR", help="the state directory (default: from the config)"
    )
    commands.add_parser(
        "schema",
        parents=[common],
        help="print the JSON Schema of the config (for editors and CI checks; reads no config)",
    )
    health = commands.add_parser(
        "health",
        parents=[common],
        help="exit 0 while a daemon's heartbeat is fresh (the image's HEALTHCHECK)",
    )
    health.add_argument(
        "--file",
        help="heartbeat file (default: the config's [daemon] heartbeat_file, "
        f"else {heartbeat.DEFAULT})",
    )
    health.add_argument("--max-age", default="30s", help="oldest acceptable heartbeat (30s)")
    return parser


def _health(args: argparse.Namespace) -> int:
    from jobs.units import parse_duration  # noqa: PLC0415

    try:
        max_age = parse_duration(args.max_age)
    except ValueError as e:
        print(f"error: --max-age: {e}", file=sys.stderr)
        return EXIT_USAGE
    path = Path(args.file) if args.file else _heartbeat_file(args)
    try:
        age = time.time() - path.stat().st_mtime
    except OSError as e:
        print(f"unhealthy: no heartbeat at {path}: {e.strerror}", file=sys.stderr)
        return EXIT_FAILURE
    if age > max_age:
        print(f"unhealthy: heartbeat is {age:.0f}s old (limit {max_age:.0f}s)", file=sys.stderr)
        return EXIT_FAILURE
    print(f"healthy: heartbeat {age:.1f}s old")
    return EXIT_OK


def _heartbeat_file(args: argparse.Namespace) -> Path:
    """The config's ``[daemon] heartbeat_file`` (file and CRONTAINER_* environment, as
    ``run`` reads them, without checking the rest of the config: cheap enough for every
    30 s); the default, said on stderr, when it cannot be read: a config edited badly does
    not stop a running daemon, so it does not make it unhealthy."""
    try:
        return locations.heartbeat_file(locations.config_path(args.config, os.environ), os.environ)
    except ValueError as e:
        print(
            f"note: {e}; reading the default heartbeat file {heartbeat.DEFAULT}",
            file=sys.stderr,
        )
        return heartbeat.DEFAULT


def _load(path_arg: str | None) -> Config:
    from scheduler.settings import config_path, load_config  # noqa: PLC0415 - keeps --help fast

    return load_config(config_path(path_arg, os.environ))


def _validate(args: argparse.Namespace) -> int:
    try:
        config = _load(args.config)
    except ConfigError as e:
        if args.json:
            print(json.dumps({"errors": e.errors}, indent=2))
        for line in e.errors:
            print(f"error: {line}", file=sys.stderr)
        return EXIT_USAGE
    found: LabelJobs | None = None
    refused: list[str] = []
    if args.labels:
        try:
            found = _label_jobs(config)
        except EngineError as e:
            print(f"error: the containers' labels cannot be read: {e}", file=sys.stderr)
            return EXIT_FAILURE
        refused = [_refusal(r) for r in found.refusals]
        if not config.daemon.labels:
            print(
                "note: [daemon] labels is false: the daemon takes none of these label jobs",
                file=sys.stderr,
            )
    for line in refused:
        print(f"error: {line}", file=sys.stderr)
    jobs, sources = _listed(config, found)
    _print_jobs(args, config, jobs, sources, refused)
    return EXIT_USAGE if refused else EXIT_OK


def _print_jobs(
    args: argparse.Namespace,
    config: Config,
    jobs: dict[str, JobEntry],
    sources: dict[str, str],
    refused: list[str],
) -> None:
    """``validate``'s answer: each job with its next runs (JSON with ``--json``)."""
    from scheduler.clock import SystemClock  # noqa: PLC0415

    now = SystemClock().now()
    # jobs with the same schedule share one Schedule (parse_schedule): each is asked once
    said: dict[int, tuple[list[str], list[str]]] = {}
    for entry in jobs.values():
        schedule = entry.schedule
        if id(schedule) not in said:
            times = [t.isoformat() for t in schedule.next_times(now, NEXT_RUNS)]
            said[id(schedule)] = (times, schedule.warnings(now))
    upcoming = {name: said[id(entry.schedule)][0] for name, entry in jobs.items()}
    warnings = {name: said[id(entry.schedule)][1] for name, entry in jobs.items()}
    if args.json:
        report = {
            name: {
                "kind": entry.job.kind,
                "source": sources.get(name, "config"),
                "schedule": entry.schedule.expression,
                "timezone": entry.job.timezone,
                "enabled": entry.job.enabled,
                "manual": entry.schedule.manual,
                "next_runs": upcoming[name],
                "warnings": warnings[name] + [_said(w) for w in config.warnings.get(name, ())],
            }
            for name, entry in jobs.items()
        }
        print(json.dumps(report, indent=2))
        return
    _print_warnings(config, warnings)
    labelled = len(jobs) - len(config.jobs)
    also = f" and {labelled} label job(s), {len(refused)} refused" if args.labels else ""
    print(f"{config.path}: OK, {len(config.jobs)} job(s){also}")
    for name, entry in jobs.items():
        job = entry.job
        state = "" if job.enabled else ", disabled"
        source = f", {sources[name]}" if name in sources else ""
        print(
            f"\n{name}  ({job.kind}, {entry.schedule.expression!r}, {job.timezone}{state}{source})"
        )
        nothing = "manual: runs only when chained or triggered" if entry.schedule.manual else None
        for when in upcoming[name] or [nothing or "never fires"]:
            print(f"  {when}")


def _refusal(refusal: Refusal) -> str:
    """A refused label job as an error line naming the container and the label:
    ``label:<container>: crontainer.jobs.<job>.<key>: <reason>``."""
    from scheduler.labels.parse import PREFIX  # noqa: PLC0415

    where = f"{PREFIX}{refusal.job}" + (f".{refusal.key}" if refusal.key else "")
    return f"label:{refusal.container}: {where}: {refusal.reason}"


def _listed(config: Config, found: LabelJobs | None) -> tuple[dict[str, JobEntry], dict[str, str]]:
    """The config's jobs and the label jobs ``found`` (if any), and each one's source."""
    if found is None:
        return dict(config.jobs), dict(config.sources)
    return {**config.jobs, **found.jobs}, {**config.sources, **found.sources()}


def _label_jobs(config: Config) -> LabelJobs:
    """The label jobs of the engine's containers now, as the daemon would take them (the
    config's rules); EngineError when the engine cannot list them."""
    from scheduler.docker_engine import DockerEngine  # noqa: PLC0415
    from scheduler.labels.scan import rules_of, scan  # noqa: PLC0415
    from scheduler.labels.watch import filter_selector  # noqa: PLC0415

    engine = DockerEngine.connect(config.daemon.engine_timeout)
    try:
        containers = engine.select(filter_selector(config.daemon.label_filter))
    finally:
        engine.close()
    return scan(containers, rules_of(config))


def _print_warnings(config: Config, schedules: dict[str, list[str]]) -> None:
    """``validate``'s warnings on stderr: the schedules', then the keys' (shell syntax)."""
    for name, found in schedules.items():
        for warning in found:
            print(f"warning: jobs.{name}.schedule: {warning}", file=sys.stderr)
    for name, keys in config.warnings.items():
        for key in keys:
            print(f"warning: jobs.{name}.{_said(key)}", file=sys.stderr)


def _said(warning: KeyWarning) -> str:
    """A key's warning as ``validate`` says it: with the rewritten key where it may be shown."""
    fix = f" — here: {warning.fix}" if warning.fix else ""
    return f"{warning.key}: {warning.message}{fix}"


def _load_or_report(args: argparse.Namespace) -> Config | None:
    """The config, or None after printing every error (the caller exits 2)."""
    try:
        return _load(args.config)
    except ConfigError as e:
        for line in e.errors:
            print(f"error: {line}", file=sys.stderr)
        return None


def _state_dir(args: argparse.Namespace, config: Config | None = None) -> Path:
    """--state-dir, else the config's [daemon] state_dir; raise ConfigError for a bad config."""
    if args.state_dir:
        return Path(args.state_dir)
    return (config or _load(args.config)).daemon.state_dir


def _config_unless_state_dir(args: argparse.Namespace) -> Config | None:
    """The config; None when only --state-dir was given (the state directory alone, no
    config read). Raise ConfigError for a bad config."""
    if args.state_dir and args.config is None:
        return None
    return _load(args.config)


def _label_job_names(config: Config | None) -> set[str]:
    """The names of the containers' label jobs (``[daemon] labels = true``), for a command
    that only needs to know a name; none when labels are off or the engine cannot say."""
    if config is None or not config.daemon.labels:
        return set()
    try:
        return set(_label_jobs(config).jobs)
    except EngineError:
        return set()


def _unknown_job(name: str, known: Iterable[str], where: str) -> str:
    """The error for a job name that is not ``where``, with the closest known name."""
    close = difflib.get_close_matches(name, sorted(set(known)), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"error: unknown job {name!r} (not {where}){hint}"


def _open_history(args: argparse.Namespace, config: Config | None) -> History:
    from scheduler.history import History  # noqa: PLC0415

    return History.open(_state_dir(args, config), readonly=True)


def _history(args: argparse.Namespace) -> int:
    from scheduler.history import HistoryError, NoHistoryError  # noqa: PLC0415
    from scheduler.reports import history_table, run_json  # noqa: PLC0415

    try:
        config = _config_unless_state_dir(args)
        history = _open_history(args, config)
    except ConfigError as e:
        for line in e.errors:
            print(f"error: {line}", file=sys.stderr)
        return EXIT_USAGE
    except NoHistoryError as e:
        print(f"note: {e}", file=sys.stderr)  # a fresh install: no runs yet, not an error
        records, known = [], set()
    except HistoryError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILURE
    else:
        try:
            records = history.runs(args.job, args.limit)
            known = set(history.marks()) if args.job and not records else set()
        finally:
            history.close()
    configured = set(config.jobs) if config is not None else set()
    if args.job and not records and args.job not in configured | known:
        labelled = _label_job_names(config)
        if args.job not in labelled:
            where = "in the config nor in the history" if config else "in the history"
            if labelled:
                where = "in the config, the containers' labels nor in the history"
            print(_unknown_job(args.job, known | configured | labelled, where), file=sys.stderr)
            return EXIT_USAGE
    if args.json:
        print(json.dumps([run_json(r) for r in records], indent=2))
    else:
        print(history_table(records))
    return EXIT_OK


def _cluster_history(args: argparse.Namespace) -> int:
    """``history --cluster``: the claims of the config's daemon name, through the engine."""
    from scheduler.claims import cluster_runs  # noqa: PLC0415
    from scheduler.docker_engine import DockerEngine  # noqa: PLC0415
    from scheduler.reports import cluster_table  # noqa: PLC0415

    try:
        config = _load(args.config)
    except ConfigError as e:
        for line in e.errors:
            print(f"error: {line}", file=sys.stderr)
        return EXIT_USAGE
    try:
        engine = DockerEngine.connect(config.daemon.engine_timeout)
        try:
            problem = engine.manager_problem()
            records = [] if problem else cluster_runs(engine, config.daemon.name, args.job)
        finally:
            engine.close()
    except EngineError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILURE
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_FAILURE
    records = records[: max(args.limit, 0)] if args.limit >= 0 else records
    if args.json:
        print(json.dumps([r.as_json() for r in records], indent=2))
    else:
        print(cluster_table(records))
    return EXIT_OK


def _jobs(args: argparse.Namespace) -> int:
    from scheduler.clock import SystemClock  # noqa: PLC0415
    from scheduler.history import HistoryError  # noqa: PLC0415
    from scheduler.reports import jobs_json, jobs_table  # noqa: PLC0415

    config = _load_or_report(args)
    if config is None:
        return EXIT_USAGE
    try:
        history = _open_history(args, config)
    except HistoryError as e:
        print(f"note: {e}", file=sys.stderr)  # no history yet: the config alone
        marks, one_shots = {}, {}
    else:
        try:
            marks, one_shots = history.marks(), history.one_shots()
        finally:
            history.close()
    found: LabelJobs | None = None
    if config.daemon.labels:
        try:
            found = _label_jobs(config)
        except EngineError as e:
            print(f"note: label jobs not shown, the engine cannot list them: {e}", file=sys.stderr)
        else:
            if found.refusals:
                print(
                    f"note: {len(found.refusals)} label job problem(s): "
                    "crontainer validate --labels says which",
                    file=sys.stderr,
                )
    jobs, sources = _listed(config, found)
    now = SystemClock().now()
    if args.json:
        print(json.dumps(jobs_json(jobs, sources, marks, now, one_shots), indent=2))
    else:
        print(jobs_table(jobs, sources, marks, now, one_shots))
    return EXIT_OK


def _trigger(args: argparse.Namespace) -> int:
    """Ask the daemon to run the job now. A job not in the config is asked for only when
    the daemon takes label jobs (only it knows the containers' jobs of the moment)."""
    from scheduler.admin import request_trigger  # noqa: PLC0415

    try:
        config = _config_unless_state_dir(args)
        state_dir = _state_dir(args, config)
    except ConfigError as e:
        for line in e.errors:
            print(f"error: {line}", file=sys.stderr)
        return EXIT_USAGE
    configured = set(config.jobs) if config is not None else set()
    unlisted = config is not None and args.job not in configured
    if config is not None and unlisted and not config.daemon.labels:
        print(_unknown_job(args.job, configured, f"in {config.path}"), file=sys.stderr)
        return EXIT_USAGE
    try:
        status, body = request_trigger(state_dir, args.job)
    except OSError as e:
        print(f"error: no daemon answers on {state_dir}/admin.sock: {e}", file=sys.stderr)
        if config is not None and unlisted:
            print(
                f"note: {args.job!r} is not in {config.path}; only a running daemon knows "
                "the containers' label jobs",
                file=sys.stderr,
            )
        return EXIT_FAILURE
    if status == 202:  # noqa: PLR2004
        print(f"triggered {body.get('job')}: run {body.get('run_id')}")
        return EXIT_OK
    running = body.get("jobs")
    if status == 404 and isinstance(running, list):  # noqa: PLR2004 - the daemon knows no such job
        where = "in the daemon's jobs"
        if config is not None and unlisted:
            where = f"in {config.path} nor {where}"
        print(_unknown_job(args.job, {*configured, *map(str, running)}, where), file=sys.stderr)
        return EXIT_USAGE
    print(f"error: {body.get('error')}", file=sys.stderr)
    return EXIT_USAGE if status == 404 else EXIT_FAILURE  # noqa: PLR2004


def _with_label_job(config: Config, name: str) -> Config | int:
    """``backups``/``restore``: ``config``, with the containers' label jobs when ``name`` is
    one of them (``[daemon] labels = true``; read from the engine as the daemon reads
    them); else the exit code, after the error is said."""
    if name in config.jobs:
        return config
    labelled: Mapping[str, JobEntry] = {}
    where = f"in {config.path}"
    if config.daemon.labels:
        try:
            found = _label_jobs(config)
        except EngineError as e:
            print(
                f"error: job {name!r} is not in {config.path}, and the containers' label jobs "
                f"cannot be read: {e}",
                file=sys.stderr,
            )
            return EXIT_FAILURE
        if name in found.jobs:
            return dataclasses.replace(config, jobs={**config.jobs, **found.jobs})
        refused = [r for r in found.refusals if f"{r.container}.{r.job}" == name]
        for refusal in refused:
            print(f"error: {_refusal(refusal)}", file=sys.stderr)
        if refused:
            return EXIT_USAGE
        labelled, where = found.jobs, f"{where} nor in the containers' labels"
    print(_unknown_job(name, [*config.jobs, *labelled], where), file=sys.stderr)
    return EXIT_USAGE


def _print_listing(engine: Engine, config: Config, args: argparse.Namespace, image: str) -> None:
    """``backups``: the job's archives, or its snapshots in its repository, newest first."""
    from scheduler.backups import backup_job, list_archives, list_snapshots  # noqa: PLC0415

    if backup_job(config, args.job).repository is not None and args.remote is None:
        snapshots = list_snapshots(engine, config, args.job, image)
        if args.json:
            print(json.dumps([s.to_json() for s in snapshots], indent=2))
        for snap in [] if args.json else snapshots:
            print(f"{snap.short_id}  {snap.time}  {' '.join(snap.paths)}")
        return
    archives = list_archives(engine, config, args.job, image, remote=args.remote)
    if args.json:
        print(json.dumps(archives, indent=2))
    for item in [] if args.json else archives:
        state = "" if item["good"] else "  (incomplete: no checksum)"
        if item.get("future"):
            state += "  (stamped in the future: made while the clock was wrong)"
        print(f"{item['archive']}  {item['bytes']} bytes  {item['time']}{state}")


def _backup_command(args: argparse.Namespace) -> int:
    """``backups`` and ``restore``: they need the engine, like the daemon."""
    from scheduler.backups import BackupCommandError, backup_job, restore  # noqa: PLC0415
    from scheduler.docker_engine import DockerEngine  # noqa: PLC0415
    from scheduler.errors import EngineError  # noqa: PLC0415
    from scheduler.startup import ops_image  # noqa: PLC0415

    loaded = _load_or_report(args)
    if loaded is None:
        return EXIT_USAGE
    # The job and its kind before the engine: a wrong name is said without a connection
    # (unless the daemon takes label jobs: the engine's containers may declare it).
    config = _with_label_job(loaded, args.job)
    if isinstance(config, int):
        return config
    try:
        backup_job(config, args.job)
    except BackupCommandError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    # The run's warnings (a container not started again, a removal that failed) on stderr;
    # stdout is the command's answer.
    from scheduler import logs  # noqa: PLC0415 - structlog (and rich) only where logged

    logs.configure(config.daemon.log_format, "warning", sys.stderr)
    try:
        engine = DockerEngine.connect(config.daemon.engine_timeout)
        image, _ = ops_image(config.daemon, engine)
        if args.command == "backups":
            _print_listing(engine, config, args, image)
            return EXIT_OK
        result = restore(
            engine,
            config,
            args.job,
            ops_image=image,
            archive=args.archive,
            to=args.to,
            identity=args.identity,
            remote=args.remote,
        )
    except (BackupCommandError, EngineError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILURE
    print(json.dumps(result))
    return EXIT_OK


def _logs(args: argparse.Namespace) -> int:
    """``logs``: the job's run file printed (or followed); the job from the config (or a
    container's labels), the run from the history."""
    loaded = _load_or_report(args)
    if loaded is None:
        return EXIT_USAGE
    config = _with_label_job(loaded, args.job)
    if isinstance(config, int):
        return config
    spec = config.jobs[args.job].job.output
    if spec is None:
        print(
            f"error: job {args.job!r} keeps no output: it has no output table "
            "(output = { volume = 'cron-output' }; see docs/operations.md, Run output)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        return _print_run(args, config, spec.volume)
    except KeyboardInterrupt:  # Ctrl-C ends a --follow: no traceback
        return EXIT_INTERRUPTED


def _print_run(args: argparse.Namespace, config: Config, volume: str) -> int:
    """``logs``: the run's file in ``volume`` printed, or followed to the run's end."""
    from scheduler.run_files import OutputDirError, OutputDirs  # noqa: PLC0415
    from scheduler.run_logs import RunLogsError, copy, find, follow, over  # noqa: PLC0415

    engine: Engine | None = None
    try:
        if config.daemon.output_dir == "engine":
            from scheduler.docker_engine import DockerEngine  # noqa: PLC0415

            engine = DockerEngine.connect(config.daemon.engine_timeout)
        directory = OutputDirs(config.daemon.output_dir, engine).of(volume)
        runs = _job_runs(args, config)
        found = find(directory, args.job, args.run, runs(None))
        out = sys.stdout.buffer
        if args.follow:
            follow(found.path, out, lambda: over(runs(found.run_id)))
        else:
            copy(found.path, out)
    except (OutputDirError, EngineError) as e:
        print(f"error: the output of job {args.job!r} cannot be read: {e}", file=sys.stderr)
        return EXIT_FAILURE
    except RunLogsError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.code
    finally:
        if engine is not None:
            engine.close()
    return EXIT_OK


def _job_runs(args: argparse.Namespace, config: Config) -> Callable[[str | None], list[RunRecord]]:
    """The job's runs in the history, newest first (``run_id``: that run's attempts only),
    read anew at each call; none without a history."""
    from scheduler.history import History, HistoryError  # noqa: PLC0415

    def runs(run_id: str | None) -> list[RunRecord]:
        try:
            history = History.open(_state_dir(args, config), readonly=True)
        except HistoryError:
            return []
        try:
            records = history.runs(args.job, -1)
        finally:
            history.close()
        return [r for r in records if run_id is None or r.run_id == run_id]

    return runs


def _schema(args: argparse.Namespace) -> int:  # noqa: ARG001 - no options
    from scheduler.settings import config_schema  # noqa: PLC0415

    print(json.dumps(config_schema(), indent=2))
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from scheduler import logs  # noqa: PLC0415

    logs.configure("auto", "info")
    log = logs.get_logger()
    try:
        config = _load(args.config)
    except ConfigError as e:
        log.error("config.invalid", errors=e.errors)  # noqa: TRY400 - no traceback for bad input
        return EXIT_USAGE
    logs.configure(config.daemon.log_format, config.daemon.log_level)
    from scheduler.daemon import Daemon  # noqa: PLC0415
    from scheduler.docker_engine import DockerEngine, tls_problem  # noqa: PLC0415

    problem = tls_problem(os.environ)
    if problem is not None:
        log.error("daemon.failed", reason="tls", error=problem)
        return EXIT_USAGE

    timeout = config.daemon.engine_timeout
    try:
        return Daemon(config, lambda: DockerEngine.connect(timeout)).run()
    except Exception:  # the process's last resort: log it, exit 1
        log.exception("daemon.crashed")
        return EXIT_FAILURE


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script and ``python -m scheduler``: the command's exit
    code, or 141 without a word when stdout's reader went away (``crontainer schema |
    head``)."""
    try:
        try:
            code = _dispatch(argv)
        except SystemExit:  # argparse's --help, --version and usage errors
            sys.stdout.flush()
            raise
        sys.stdout.flush()  # here, not at the interpreter's exit, where it cannot be caught
    except BrokenPipeError:
        # Whatever is still buffered for stdout goes nowhere, also at exit.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return code


def _dispatch(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    commands = {
        "run": _run,
        "validate": _validate,
        "health": _health,
        "history": lambda args: _cluster_history(args) if args.cluster else _history(args),
        "jobs": _jobs,
        "trigger": _trigger,
        "backups": _backup_command,
        "restore": _backup_command,
        "logs": _logs,
        "schema": _schema,
    }
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
