"""The registry of log events: every event the daemon logs, its level, its fields and what it
means. The monitoring interface: names and fields are stable. ``docs/reference.md`` is
generated from it, and a test checks it against every logging call in the code."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Event:
    """One log event. ``fields``: each ``name`` or ``name: what it holds``; ``levels``: the
    levels it is logged at (``exception`` counts as ``error``)."""

    name: str
    levels: tuple[str, ...]
    fields: tuple[str, ...]
    meaning: str

    def field_names(self) -> frozenset[str]:
        """The fields' names (what a logging call may pass)."""
        return frozenset(f.split(":")[0].strip() for f in self.fields)


def _event(name: str, level: str, fields: str, meaning: str) -> Event:
    """An event from its fields written ``a b c: note; d`` — the names before the first
    ``:`` of each ``;``-separated part are split on spaces, the last one takes the note."""
    parts: list[str] = []
    for part in filter(None, (p.strip() for p in fields.split(";"))):
        names, colon, note = part.partition(":")
        *plain, last = names.split()
        parts += plain
        parts.append(f"{last}:{note}" if colon else last)
    return Event(name, tuple(level.split("/")), tuple(parts), meaning)


RUN = "job run_id"
ATTEMPT = "job run_id attempt container_id duration_s"

EVENTS: tuple[Event, ...] = (
    # the daemon's life
    _event(
        "config.invalid",
        "error",
        "errors: a list of 'where: what' lines; trigger kept: at a reload",
        "the config cannot be used: exit 2 at start; at a reload the running config stays",
    ),
    _event(
        "engine.unavailable",
        "warning",
        "error; retry_for_s: at start",
        "the engine does not answer: at start (retried for `engine_wait`) or while running "
        "(logged once per outage)",
    ),
    # kind "service" (Swarm job services)
    _event(
        "daemon.not_swarm_manager",
        "warning",
        "jobs: the enabled service jobs (at a reload: those it added or changed)",
        "at start, or a reload adding or changing a service job: the engine is not a Swarm "
        "manager, so these jobs' runs will fail (reason `not_swarm_manager`)",
    ),
    _event("engine.available", "info", "down_s: while running", "it answers (again)"),
    _event(
        "engine.recheck",
        "warning",
        "error",
        "the engine answered a ping but failed right after; checked again",
    ),
    _event("lock.retaken", "info", "", "after an outage, the single-instance lock is held again"),
    _event(
        "daemon.started",
        "info",
        "name jobs config ops_image ops_image_source",
        "every job is scheduled",
    ),
    _event("job.scheduled", "info", "job kind schedule timezone next_run", "at start, per job"),
    _event("job.disabled", "info", "job", "at start, per job with `enabled = false`"),
    _event(
        "job.catch_up",
        "info",
        "job missed_at late_s",
        "a catch-up run is started for a time missed during downtime",
    ),
    _event(
        "job.catch_up_skipped",
        "info",
        "job missed_at late_s starting_deadline_s",
        "a missed time is older than the starting deadline",
    ),
    _event(
        "job.one_shot_done",
        "info",
        "job at: the instant, ISO 8601; outcome: the run's final status; run_id",
        "a one-shot (`@at`) job's run ended: its instant is done and never runs again, across "
        "restarts",
    ),
    _event(
        "job.one_shot_missed",
        "warning",
        "job at outcome: `missed` or `skipped`; run_id: none when no run was made; reason: "
        "`catch_up_off` (the instant passed while no daemon ran, or its run never began, and "
        "the job has no catch_up), `starting_deadline`, or the run's own reason",
        "a one-shot's instant passed without its run: it is done (missed) and never runs",
    ),
    _event(
        "job.one_shot_pending",
        "info",
        "job at run_id; reason: the run's (`daemon_stopping`, `replaced`, "
        "`engine_unavailable`); until: `engine_return` (handed over again, trigger `catch_up`, "
        "when the engine answers again) or `next_start` (decided at the daemon's next start)",
        "a one-shot's run ended before it began (cancelled while it waited for a lock or a "
        "slot, or missed while the engine did not answer, with catch_up): its instant stays "
        "claimed, not done, and runs later within starting_deadline (with catch_up)",
    ),
    _event(
        "job.one_shot_refused",
        "warning",
        "job at reason: `already_run`",
        "the scheduling loop found a one-shot's instant due again (the wall clock stepped back): "
        "it is not run twice",
    ),
    _event(
        "clock.jumped",
        "warning",
        "seconds: negative when backwards",
        "the wall clock moved that much more than real time",
    ),
    _event("job.triggered", "info", "job", "`crontainer trigger` asked for a run"),
    _event(
        "config.reloaded",
        "info",
        "trigger: `SIGHUP`, `file_changed`; added removed changed jobs",
        "a new config is in effect",
    ),
    _event(
        "job.removed",
        "info",
        "job; reason: `config` (a reload), `labels` (its container is gone, or its labels no "
        "longer declare it or are refused)",
        "a job left the schedule; a run of it in flight ends as it would have",
    ),
    _event(
        "labels.applied",
        "info",
        "trigger: `start`, `event`, `resync`, `reload`, `events_resumed`; added removed "
        "changed: label job names; jobs: label jobs now",
        "the containers' label jobs changed (`[daemon] labels = true`)",
    ),
    _event(
        "labels.rejected",
        "warning",
        "container job: the label's job name; key: the key refused; reason",
        "a label job is not taken (the fence, or an invalid value); logged when first seen, "
        "the container's other jobs are taken",
    ),
    _event(
        "labels.scan_failed",
        "warning/error",
        "error trigger; exception: a bug (at error)",
        "the containers could not be listed; the label jobs in force stay, scanned again at "
        "the next event or `label_resync`",
    ),
    _event(
        "labels.events_lost",
        "warning",
        "error",
        "the engine's event stream ended (an engine restart) or cannot be followed; once per "
        "outage: a stream that ends within 30 s without an event (a socket proxy closing "
        "idle streams) is the same outage; followed again with a scan, retried after 1, 2, "
        "5, 10, then every 30 s",
    ),
    _event(
        "config.restart_required",
        "warning",
        "keys",
        "`[daemon]` keys changed; they apply at the next start",
    ),
    _event(
        "config.warning",
        "warning",
        "job; key: the key below the job, e.g. `pre_exec[0].command`; warning",
        "at start and after each reload, each warning `crontainer validate` prints about a "
        "key: a string command with shell syntax no shell reads (see configuration.md)",
    ),
    _event(
        "daemon.stopping",
        "info",
        "signal active_runs shutdown_grace_s",
        "SIGTERM/SIGINT received (or the lock was taken: `signal` `lock_taken`)",
    ),
    _event("daemon.hurry", "info", "detail", "a second SIGTERM/SIGINT: stop runs now"),
    _event(
        "daemon.cancelling_runs",
        "warning",
        "active_runs",
        "the grace is over; running jobs are stopped",
    ),
    _event("daemon.stopped", "info", "active_runs", "about to exit 0 (1 after `lock_taken`)"),
    _event(
        "daemon.failed",
        "error",
        "reason: `engine_unavailable`, `state_dir`, `already_running`, `lock`, `lock_taken`, "
        "`http`, `tls`, `output`, `ha` (not a Swarm manager, or the lease), "
        "`scheduler loop ended`; error; http: the address, with `http`; "
        "errors: with `output`, a 'jobs.<name>.output.volume: why' line per job whose output "
        "volume cannot be reached",
        "about to exit 1 (`lock_taken`: after a graceful stop; `tls`: exit 2)",
    ),
    _event(
        "daemon.crashed",
        "error",
        "exception",
        "a bug; exit 1, once what the daemon held is released (runs in flight stopped as at "
        "SIGTERM)",
    ),
    _event(
        "daemon.heartbeat_failed", "warning", "path error", "the heartbeat file cannot be written"
    ),
    _event(
        "engine.check_failed",
        "error",
        "exception",
        "a bug in the periodic engine check; the daemon goes on and checks again",
    ),
    _event(
        "job.fire_failed",
        "error",
        "job scheduled_at exception",
        "a bug while firing a job; other jobs go on",
    ),
    _event(
        "job.schedule_failed",
        "error",
        "job exception",
        "a bug: the job's next time cannot be computed; the job is left unscheduled, the "
        "others go on",
    ),
    _event(
        "history.write_failed",
        "error",
        "error",
        "the state database refuses writes (full disk…): logged once when writes start "
        "failing; runs go on, those records are lost, `/healthz` answers 503, and a `backup` "
        "does not stop a container whose stop it cannot record (its run fails, `reason` "
        "`state_unwritable`)",
    ),
    _event(
        "history.write_recovered",
        "info",
        "failed_writes: lost meanwhile",
        "a write that adds a row works again after `history.write_failed`",
    ),
    _event(
        "library.log",
        "debug/info/warning/error",
        "logger message",
        "a message of a library (docker, urllib3, apscheduler) through the same pipeline",
    ),
    # runs
    _event(
        "run.skipped",
        "info/warning",
        f"{RUN} reason: `previous run still running`, `container_not_running` or `claimed`; "
        "running_run_id scheduled_at trigger; container: of a label job; claimant: with "
        "`claimed`, the replica that claimed the fire",
        '`concurrency = "forbid"` and the previous run still runs; or a label job\'s container '
        'is not running (stopped, not removed); or (`ha = "swarm"`, at info) another replica '
        "claimed this fire and runs it",
    ),
    _event(
        "run.prepared",
        "info",
        f"{RUN} scheduled_at container_id ahead_s: seconds left before its due time",
        "a `run` job's container for its next run was made `prepare_ahead` before its time "
        "(image, secrets, create, output attached): only its start remains",
    ),
    _event(
        "run.prepare_failed",
        "debug/warning/error",
        f"{RUN} scheduled_at error; reason: `internal`, a bug: logged with its traceback; "
        "exception",
        "preparing a run (or an exec) ahead failed; the run takes the normal path at its time "
        "(and its record says why it failed, if it does again). At debug when the job's "
        "container could not be selected (none, not running, several; or gone or stopped "
        "by the exec's creation): the run reports that itself; at warning otherwise",
    ),
    _event(
        "run.prepared_discarded",
        "info",
        f"{RUN} scheduled_at container_id reason: why it will not be started — the reason its "
        "run did not start (`previous run still running`, `starting_deadline`, "
        "`engine_unavailable`, `container_not_running`, `daemon_stopping`, …), or "
        "`job_removed`, `job_changed`, `job_disabled`, `replaced`, `expired`, `not_ready`, "
        "`engine_returned`, `daemon_stopping`, `not_claimed`, `not_started`",
        "a container prepared ahead will not be started and is removed",
    ),
    _event(
        "run.exec_prepared",
        "info",
        "job scheduled_at exec_id container_id: the container's id; reused: the exec an earlier "
        "run did not start, its container still the one the selector finds; ahead_s: seconds "
        "left before the run's due time",
        "an `exec` job's exec for its next run was created `prepare_ahead` before its time "
        "(not started): only its start remains",
    ),
    _event(
        "run.exec_unused",
        "info",
        "job container_id exec_id; run_id error: when its start was refused; reason: "
        "`job_removed`, `job_changed`, `job_disabled`, `new_container` (the selector finds "
        "another container now), `start_refused` (its container was stopped or removed: the "
        "run created a new exec), `replaced`, `daemon_stopping`, `engine_returned` (taken by "
        "a run still waiting for a lock or a slot when the engine came back: the run creates "
        "its own)",
        "an exec created ahead will never be started; the engine has no call to delete it and "
        "drops it when its container stops",
    ),
    _event(
        "run.queued",
        "info",
        f"{RUN} running max_concurrent_runs",
        "the global cap is reached; the run waits for a slot",
    ),
    _event(
        "run.waiting",
        "info",
        f"{RUN} locks: every lock the run takes; lock: the one it waits for; holder_job "
        "holder_run_id: the run holding it (null when it is free and a run ahead in line "
        "wants it); ahead: runs in line before it that want one of its locks",
        "a lock of the job (`lock`) is held, or wanted by a run that came first: the run "
        "waits its turn (first come, first served), holding none of its locks",
    ),
    _event(
        "run.missed",
        "warning",
        f"{RUN} reason: `starting_deadline` (late before it waited), `lock:<name>` (it "
        "waited for that lock, even if it was free when the run woke past its deadline), "
        '`engine_unavailable`, `claim_failed` (`ha = "swarm"`: the claim\'s create got no '
        "answer or an error: not run here), `claim_expired` (a catch-up older than "
        "`ha_claim_keep`); lag_s starting_deadline_s error scheduled_at trigger; "
        "holder_job holder_run_id: the run that held the lock, with `lock:<name>`",
        "it could not start within its starting deadline (a slot or a lock was not free in "
        "time, or the daemon was late), or the engine is away",
    ),
    _event(
        "run.replacing",
        "info",
        f"{RUN} replaced_run_ids",
        '`concurrency = "replace"`: the previous run is being stopped',
    ),
    _event(
        "run.started",
        "info",
        f"{RUN} attempt kind scheduled_at lag_s: seconds after its scheduled time; "
        "trigger: `schedule`, `catch_up`, `start`, `manual`, `chain`; parent_run_id: of a "
        "chained run, the run whose end started it",
        "an attempt begins",
    ),
    _event(
        "chain.dispatched",
        "info",
        "job run_id: the parent run's; parent_status: how it ended; on: `on_success`, "
        "`on_failure` or `on_finish`; child: the job started; child_run_id",
        "a run ended and a job it chains to was started (trigger `chain`); the child's own "
        "`run.*` events come from its thread (its `run.started` may come before this), and "
        "a refusal after its start — `run.missed` past its `starting_deadline` — is the "
        "child's",
    ),
    _event(
        "chain.skipped",
        "warning/error",
        "job run_id: the parent run's; parent_status child; reason: `disabled`, `removed` (no "
        "longer in force), `parent_removed` (the parent's job left the config), "
        "`daemon_stopping`, why the child's policy refused it (`previous run still "
        "running`, `engine_unavailable`, …: its own `run.skipped`/`run.missed` comes too), "
        "or `internal` (a bug: at level error, with `on` and its traceback in `exception`); "
        "child_run_id child_status: when its policy refused it; on exception",
        "a job a finished run chains to was not started",
    ),
    _event(
        "run.container_stopped",
        "info",
        f"{RUN} container",
        "a `backup` run stopped a `stop` container",
    ),
    _event(
        "run.container_started",
        "info",
        f"{RUN} container",
        "a `backup` run started a `stop` container again",
    ),
    _event(
        "run.container_not_running",
        "info",
        f"{RUN} container",
        "a `backup` run left alone a `stop` container that was not running",
    ),
    _event(
        "run.container_start_failed",
        "error",
        f"{RUN} container error",
        "starting a stopped container again failed (tried again at the next start of the daemon)",
    ),
    _event(
        "run.container_restarted_after_crash",
        "warning",
        "run_id container",
        "at start: a container a dead daemon's run had stopped was started again",
    ),
    _event(
        "run.signal_sent",
        "info",
        f"{RUN} container signal",
        "a `signal` (or `rotate`) job signalled a container",
    ),
    _event("run.file_rotated", "info", f"{RUN} path to", "a `rotate` job rotated a file"),
    _event(
        "run.container_restarted",
        "info",
        f"{RUN} container",
        "a `signal` job with `restart = true` (or a `rotate` job's `restart`) restarted a "
        "container",
    ),
    _event(
        "run.interrupted",
        "warning",
        f"{RUN} attempt container_id reason: `engine_unavailable`; error",
        "the engine went away during the attempt; settled when it is back. The run keeps its "
        "locks meanwhile (its container may still run): adopted with it, or released if the "
        "settling finds the container gone",
    ),
    _event(
        "run.locks_not_claimed",
        "warning",
        f"{RUN} locks: the job's locks it did not get; holder_run_ids: the runs holding them",
        "an adopted run (left running by an earlier instance, or cut off by an engine outage) "
        "could not take every lock of its job: another run holds one, and the two may overlap",
    ),
    _event(
        "run.adopted",
        "info",
        f"{RUN} attempt container_id running_s",
        "a container left running by an earlier instance is waited for",
    ),
    _event(
        "run.settled",
        "info/warning",
        f"{RUN} attempt status exit_code reason container_id; service_id: a service job's; "
        'replica: a dead replica\'s run (`ha = "swarm"`), settled onto its claim by this one '
        "(reason `settled_after_replica_died`, `orphan_stopped`, or `replica_died`: claimed, "
        "no container left), or the replica that settled this one's run (`settled_by_replica`)",
        "an attempt of an earlier instance (or of a dead replica) is recorded after the fact",
    ),
    _event(
        "run.orphan_removed",
        "warning",
        "container_id name reason; service_id: a service job's Swarm service instead",
        "a container (or a service job's service) of ours that no run claims was removed",
    ),
    _event(
        "run.settle_failed",
        "warning",
        "container_id error; service_id: a service job's Swarm service instead",
        "the engine refused to settle a container (or a service)",
    ),
    _event(
        "run.checkpoints_recovered",
        "info",
        "container_id reports",
        "a `logship` container of a dead daemon: the checkpoints it reported meanwhile were "
        "read from its log and stored",
    ),
    _event(
        "run.checkpoints_unrecovered",
        "warning",
        "container_id error",
        "that log could not be read (a log driver without reading): those lines are shipped again",
    ),
    _event(
        "run.feed_stopped",
        "debug",
        f"{RUN} error",
        "a `logship` tool stopped reading the containers' lines the daemon fed it (its "
        "`max_bytes`, or it failed)",
    ),
    _event(
        "backup.future_archive",
        "warning",
        f"{RUN} archives",
        "raised by the backup tool: the target holds archives stamped in the future (a clock "
        "that was wrong); kept and not counted by retention",
    ),
    _event(
        "run.control_rejected",
        "warning",
        f"{RUN} reason",
        "an ops tool's control line was not used: not JSON, longer than 64 MiB, or not the "
        "shape the daemon acts on (the line itself is never logged)",
    ),
    _event(
        "run.output_failed",
        "error",
        f"{RUN} exception",
        "a bug while reading a container's output: that reading ends, the run and the daemon go on",
    ),
    _event(
        "run.feed_failed",
        "error",
        f"{RUN} exception",
        "a bug while feeding a tool's stdin: the feed ends, the run and the daemon go on",
    ),
    _event(
        "run.retrying",
        "info",
        f"{RUN} attempt next_attempt delay_s",
        "an attempt failed and another follows after `delay_s`",
    ),
    _event(
        "run.output",
        "info",
        f"{RUN} stream: `stdout`, `stderr`; line; truncated: only when cut; node task: a "
        "service job's task's (the node's host name, the task id)",
        "a line of the job's output, as it comes",
    ),
    _event(
        "run.output_truncated",
        "info",
        f"{RUN} dropped_lines dropped_bytes limit_bytes",
        "the run printed more than `max_output_per_run`",
    ),
    _event(
        "run.output_lost", "warning", f"{RUN} error", "the output stream broke (the run goes on)"
    ),
    _event(
        "run.output_file_failed",
        "warning",
        f"{RUN} volume error",
        "the run's output file (`output`) cannot be made or written: the run goes on, its "
        "output in the log only (from the failed write on)",
    ),
    _event(
        "output.pruned",
        "info",
        "job files keep_s",
        "when a run of the job ended, its output files older than `output.keep` were deleted",
    ),
    _event(
        "run.stopping",
        "info",
        f"{RUN} reason timeout_s stop_signal",
        "the timeout passed (or a stop was asked); the container is being stopped",
    ),
    _event(
        "run.succeeded",
        "info",
        f"{ATTEMPT} exit_code: 0",
        "the attempt succeeded; a run of an ops tool (`backup`, `logship`, `rotate`) adds the "
        "keys of its tool's result (see the kind in configuration.md)",
    ),
    _event(
        "run.failed",
        "warning",
        f"{ATTEMPT} exit_code error reason: `oom_killed`, `pull_denied`, "
        "`thread_start_failed`, a service job's `not_swarm_manager`, `tasks_failed`, "
        "`unknown_secret`, `unknown_config`, …; scheduled_at trigger",
        "non-zero exit, or the run could not be made (`pull_denied`: the image's registry "
        "refused the pull, `error` names it; `thread_start_failed`: the process is "
        "at its thread limit; the run is recorded and the job's next run is not blocked); a "
        "failed ops tool's run adds its result's keys, if it gave a result",
    ),
    _event(
        "run.adopt_failed",
        "warning",
        f"{RUN} error",
        "no thread could be started to wait for a container an earlier daemon left; it is "
        "settled at the next start",
    ),
    _event(
        "run.timed_out",
        "warning",
        f"{ATTEMPT} exit_code reason: `timeout`",
        "ended by its `timeout`",
    ),
    _event(
        "run.cancelled",
        "warning",
        f"{RUN} reason: `daemon_stopping`, `replaced`; attempt container_id duration_s: if it "
        "had started; scheduled_at trigger",
        "stopped by shutdown or by a replacing run (also while it waited for a lock or a slot)",
    ),
    _event(
        "run.cancel_failed", "warning", f"{RUN} error", "the engine refused to stop a container"
    ),
    _event(
        "run.cleanup_failed",
        "warning",
        f"{RUN} container_id error; service_id: a service job's Swarm service instead",
        "the engine refused to remove a container (or had not removed a prepared one 30 s "
        "into a stop), or a service job's service: the next start removes it",
    ),
    _event(
        "run.crashed",
        "error",
        f"{RUN} exception",
        "a bug in crontainer while running a job (the run ends `failed`)",
    ),
    # notifications
    _event(
        "notify.sent",
        "info",
        f"{RUN} kind: `failure`, `success`, `recovery`, `missed`, `ping_started`, "
        "`ping_succeeded`, `ping_failed`…; channel: `webhook`, `ping`, or a `notify.urls` "
        "URL's scheme (`mailto`, `ntfy`…; `secret` for one from a secret not yet read); "
        "target: scheme and host only (of a URL whose host is a token, the scheme); attempts",
        "a notification was delivered",
    ),
    _event(
        "notify.failed",
        "warning",
        f"{RUN} kind channel target attempts error: short; never a header value, a URL's "
        "user, password, path or query",
        "it was given up after its retries (of a `notify.urls` URL from a secret that Apprise "
        "cannot use, the error says so)",
    ),
    _event(
        "notify.crashed",
        "error",
        f"{RUN} kind channel error: the exception's type",
        "a bug while sending that notification; the sender goes on with the next",
    ),
    _event(
        "notify.suppressed",
        "info",
        f"{RUN} kind cooldown_s",
        "held back by the job's cooldown (the webhook and every `notify.urls` URL together)",
    ),
    _event("notify.dropped", "warning", f"{RUN} kind channel target queued", "the queue was full"),
    # the listeners
    _event(
        "http.listening",
        "info",
        "address port ui",
        "the `/metrics`, `/healthz`, `/readyz` listener is up (`ui`: with the status page)",
    ),
    _event("http.request", "debug", "line", "a request to that listener"),
    _event(
        "http.busy",
        "warning",
        "max_connections refused: connections closed at once since the last `http.busy`",
        "a connection came while 32 were being served: it was closed without an answer; at "
        "most once a minute",
    ),
    _event(
        "http.request_failed",
        "debug/warning",
        "error",
        "answering a request raised (debug: the client went away or was too slow); that "
        "connection is closed, the listener goes on",
    ),
    _event("admin.request", "debug", "request", "a request on the admin socket"),
    _event(
        "admin.busy", "warning", "max_connections refused", "as `http.busy`, on the admin socket"
    ),
    _event(
        "admin.request_failed",
        "debug/warning",
        "error",
        "as `http.request_failed`, on the admin socket",
    ),
    # high availability (ha = "swarm": scheduler/claims.py, scheduler/replicas.py)
    _event(
        "ha.replica_started",
        "info",
        "replica: this process's id; lease: its lease's config name",
        '`ha = "swarm"`: this replica took its lease in the Swarm (in place of the lock)',
    ),
    _event(
        "ha.lease_failed",
        "warning",
        "lease error",
        "renewing (or, at a stop, removing) the lease failed: the store did not answer; "
        "logged once until it answers (`ha.lease_renewed`)",
    ),
    _event("ha.lease_renewed", "info", "lease", "the lease is renewed again after a failure"),
    _event(
        "ha.lease_retaken",
        "warning",
        "lease",
        "the lease was gone (another replica judged this one dead while it was cut off, and "
        "removed it): made again",
    ),
    _event(
        "ha.replica_dead",
        "warning",
        "replica: the dead one; by: this replica",
        "a replica's lease has not moved for 3 `ha_lease_interval`s (or is gone): its "
        "containers are settled here (`run.settled` with `replica`), then its lease removed",
    ),
    _event(
        "ha.claim_update_failed",
        "warning",
        "claim: its config name; error",
        "a run's outcome could not be written onto its claim (`history --cluster` shows it "
        "claimed, without an end)",
    ),
    _event(
        "ha.claims_swept",
        "info",
        "removed kept",
        "claims older than `ha_claim_keep` were removed (each job keeps its newest "
        "`history_limit` of each outcome)",
    ),
    _event(
        "ha.tick_failed",
        "warning/error",
        "error; exception: a bug (error level)",
        "one round of the lease keeper failed (listing leases, the sweep); the next goes on",
    ),
)
"""Every event, grouped: the daemon's life, runs, notifications, the listeners, high
availability."""

BY_NAME = {event.name: event for event in EVENTS}
"""The events by name."""
