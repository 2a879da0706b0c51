"""The ``crontainer`` command's exit codes: the three codes, and what each means for each
command (``docs/reference.md`` is generated from this table; a test keeps it complete)."""

from __future__ import annotations

EXIT_OK = 0
"""Success."""
EXIT_FAILURE = 1
"""A runtime failure."""
EXIT_USAGE = 2
"""A bad config or a bad use of the command."""
EXIT_INTERRUPTED = 130
"""128 + SIGINT: what a shell reports for a tool stopped with Ctrl-C."""
EXIT_BROKEN_PIPE = 141
"""128 + SIGPIPE: what a shell reports for a tool whose reader went away (``| head``)."""

CODES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_FAILURE: "a runtime failure",
    EXIT_USAGE: "a bad config or usage (argparse's own usage errors too; an unknown job)",
    EXIT_INTERRUPTED: "`logs --follow` stopped with Ctrl-C (SIGINT) before the run ended",
    EXIT_BROKEN_PIPE: "any command whose stdout was closed before it had written all of it "
    "(`crontainer schema | head`): it stops without a word, as a tool killed by SIGPIPE",
}
"""Every code the command exits with, in one word each."""

COMMANDS: dict[str, dict[int, str]] = {
    "run": {
        EXIT_OK: "a clean stop on SIGTERM/SIGINT",
        EXIT_FAILURE: "`daemon.failed` (the engine stayed unreachable for `engine_wait`, the "
        "state directory cannot be used, another daemon holds or took the lock, the HTTP "
        "address cannot be bound, the scheduling loop ended) or `daemon.crashed`",
        EXIT_USAGE: "`config.invalid`, or `daemon.failed` with `reason` `tls` (the "
        "DOCKER_TLS_VERIFY / DOCKER_CERT_PATH settings cannot be used)",
    },
    "validate": {
        EXIT_OK: "the config is valid (schedule warnings do not change it); with `--labels`, "
        "every label job too",
        EXIT_FAILURE: "`--labels`: the engine cannot list the containers",
        EXIT_USAGE: "the config is invalid, or (`--labels`) a label job is refused: every error "
        "printed",
    },
    "history": {
        EXIT_OK: "the runs printed (none on a fresh install: a note, no state database needed)",
        EXIT_FAILURE: "the state database cannot be read; with `--cluster`, the engine cannot "
        "be read or is not a Swarm manager",
        EXIT_USAGE: "the config is invalid (unless only `--state-dir` is given), or the job is "
        "neither in the config, nor (with `labels = true`) in the containers' labels, nor in "
        "the history",
    },
    "jobs": {
        EXIT_OK: "the jobs printed (without a state database: from the config alone)",
        EXIT_USAGE: "the config is invalid",
    },
    "trigger": {
        EXIT_OK: "the run started; its run id printed",
        EXIT_FAILURE: "the run was skipped (`forbid`) or could not start (the engine is away, "
        "no thread), or no daemon answers on the admin socket",
        EXIT_USAGE: "the job is not in the config (or not in the daemon's jobs; with "
        "`labels = true`, in neither), or the config is invalid",
    },
    "backups": {
        EXIT_OK: "the archives or snapshots printed",
        EXIT_FAILURE: "no such `--from` remote, or the engine (the labels' too), the ops "
        "container or the listing failed",
        EXIT_USAGE: "the job is not in the config (with `labels = true`: nor a container's "
        "label job, or one the fence refuses) or not a backup job, or the config is invalid",
    },
    "restore": {
        EXIT_OK: "restored; the result printed as JSON",
        EXIT_FAILURE: "no such archive or remote, a bad `--to` or `--identity`, or the "
        "engine (the labels' too), the ops container or the restore failed",
        EXIT_USAGE: "the job is not in the config (with `labels = true`: nor a container's "
        "label job, or one the fence refuses) or not a backup job, or the config is invalid",
    },
    "logs": {
        EXIT_OK: "the run's output file printed (with `--follow`: to the run's end)",
        EXIT_FAILURE: "no such run, or the run kept no file (it ended before the job kept "
        "its output, `on = 'failure'` deleted it, `keep` pruned it), or no file of the job "
        "yet (`latest`), or the output volume cannot be reached (`output_dir`)",
        EXIT_USAGE: "the job is not in the config (with `labels = true`: nor a container's "
        "label job), or it keeps no output (no `output` table), or the config is invalid",
        EXIT_INTERRUPTED: "`--follow` stopped with Ctrl-C before the run ended",
    },
    "schema": {EXIT_OK: "the JSON Schema printed"},
    "health": {
        EXIT_OK: "the heartbeat is fresh",
        EXIT_FAILURE: "no heartbeat file (`--file`, else the config's `heartbeat_file`), or "
        "older than `--max-age`",
        EXIT_USAGE: "`--max-age` is not a duration",
    },
}
"""Each command's exit codes and when it exits with them."""
