"""The state database's tables: one SQL script per schema version (``PRAGMA user_version``).

Each entry of ``MIGRATIONS`` moves the file one version up; ``Database.open`` runs the ones
a file lacks, each inside a transaction. Append a new entry, never edit a shipped one.
"""

MIGRATIONS: tuple[str, ...] = (
    # 1: runs (one row per attempt) and per-job marks
    """
    CREATE TABLE runs (
        run_id TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        job TEXT NOT NULL,
        trigger TEXT NOT NULL,
        scheduled_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        status TEXT NOT NULL,
        exit_code INTEGER,
        reason TEXT,
        error TEXT,
        container_id TEXT,
        output_tail TEXT,
        PRIMARY KEY (run_id, attempt)
    );
    CREATE INDEX runs_by_job ON runs (job, status, scheduled_at);
    CREATE TABLE jobs (
        name TEXT PRIMARY KEY,
        last_scheduled_at TEXT,
        last_success_at TEXT,
        last_status TEXT,
        last_finished_at TEXT
    );
    """,
    # 2: containers a run stopped and must start again (a successor does, after a crash)
    """
    CREATE TABLE stopped (
        run_id TEXT NOT NULL,
        container TEXT NOT NULL,
        stopped_at TEXT NOT NULL,
        PRIMARY KEY (run_id, container)
    );
    """,
    # 3: where log shipping stands, per job and source (what the sink acknowledged)
    """
    CREATE TABLE checkpoints (
        job TEXT NOT NULL,
        source TEXT NOT NULL,
        data TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (job, source)
    );
    """,
    # 4: that table holds any ops tool's state (a rotation's last rotations too): named so
    """
    ALTER TABLE checkpoints RENAME TO tool_state;
    """,
    # 5: the run whose end started a chained run (trigger 'chain')
    """
    ALTER TABLE runs ADD COLUMN parent_run_id TEXT;
    """,
    # 6: one-shot (@at) jobs: each instant claimed before it runs, then done with its outcome
    """
    CREATE TABLE one_shots (
        job TEXT NOT NULL,
        at TEXT NOT NULL,
        claimed_at TEXT NOT NULL,
        outcome TEXT,
        reason TEXT,
        run_id TEXT,
        done_at TEXT,
        PRIMARY KEY (job, at)
    );
    """,
    # 7: a job's newest runs found from an index (the status page reads them for every job)
    """
    CREATE INDEX runs_by_job_time ON runs (job, coalesce(started_at, scheduled_at), attempt);
    """,
    # 8: what a backup run stored and read (the status page's chart of bytes and throughput)
    """
    ALTER TABLE runs ADD COLUMN stored_bytes INTEGER;
    ALTER TABLE runs ADD COLUMN read_bytes INTEGER;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
