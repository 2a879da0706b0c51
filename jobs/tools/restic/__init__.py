"""Back up into a restic repository, list the job's snapshots, restore one (inside an ops
container).

    python -m jobs.tools.restic             # the request arrives on stdin

stdin, written by the daemon: one line, a ``ResticRequest`` (``jobs.protocol.restic``) as
JSON, its secrets (``password``, ``env``'s values, ``ssh_key``) and ``last_check``
completed by the daemon. The password and ``env`` go only into the environment of the
restic processes the tool starts
(with ``RESTIC_REPOSITORY`` and a cache directory under the temporary directory), never
onto a command line; whatever restic prints on stderr is said again, the repository
redacted and every secret value as ``***``. An ``sftp:`` repository's SSH key and
known_hosts (both in the request) go into files of a private temporary directory, removed
at the end; restic's ssh uses them and nothing else, and an unknown or changed host key
fails the run saying so.

A backup run (``command`` "backup"): ``restic list locks`` opens the repository (missing:
``restic init`` when the request's ``init`` says so, else the run fails saying the
repository does not exist; a wrong password fails saying so); ``restic unlock`` removes the
locks restic deems stale (older than 30 minutes, or made under this host name by a process
that is gone; restic 0.14 names the host by its hostname, which the daemon makes the same for
every backup run of the job — ``ResticRequest.lock_host`` — so the lock of the job's run
killed in an earlier container is stale at once, another job's or host's lock is not);
``restic backup --json`` snapshots the request's ``paths`` — without them, every volume
mounted here but the one holding a local repository — with the daemon's name as host and the
tags ``crontainer-job=<job>`` and ``crontainer-daemon=<daemon>``; with keep rules, ``restic
forget --prune`` forgets the snapshots of that host with both tags (grouped by host and
tags) the rules do not keep; then ``restic check`` when one is due (``always``; ``weekly``
or ``monthly`` once the last check is 7 or 30 days old, or never made).

``command`` "snapshots" lists the job's snapshots (its host, both its tags), newest first
(``{"snapshots": [...]}``); "restore" restores one of them (``snapshot``: an id or
``latest``, the job's newest) into the volumes mounted here: restic writes into a fresh
staging directory in each volume, and the entries are then moved into place following no
link in the volume (``restoring``). Neither creates a repository.

A SIGTERM (the daemon stopping the run's container) reaches the running restic as SIGINT,
on which restic removes its lock before it ends (on SIGTERM, restic 0.14 would leave it).

stderr carries the result as a control line (``{"result": …}``: a ``ResticResult``, the
listing, or a ``ResticRestored``) and diagnostics through ``jobs.protocol.lines.say``.
Exit 0: done; 1: the run failed, its
last diagnostic says why (once a snapshot is made, naming it); 2: the request cannot be
read (the field named); 3: an internal error.

The modules: ``cli`` (``main``: the request read, the result emitted), ``steps`` (each step
and ``run``, which takes them in order) and ``restoring`` (listing, restore) over ``runner``
(restic's environment, its ``--json`` output read, what it says redacted) and ``ssh`` (an
``sftp:`` repository's key and known_hosts, and the ssh command restic runs with them);
``__main__`` runs ``cli.main``.
"""
