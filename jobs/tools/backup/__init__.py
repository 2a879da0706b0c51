"""Make, check and restore backup archives (inside an ops container).

    python -m jobs.tools.backup create --job NAME --target DIR [--compression zstd]
                                [--recipient AGE_PUBLIC_KEY]... [--passphrase-stdin]
                                [--timezone TZ]
                                [--keep-last N]... [--mounts] SOURCE...
    python -m jobs.tools.backup verify --target DIR ARCHIVE
    python -m jobs.tools.backup list --job NAME --target DIR
    python -m jobs.tools.backup restore --target DIR [--root /] [--only PATH]...
                                [--identity-stdin | --passphrase-stdin] ARCHIVE

Each command line is a request of ``jobs.protocol.backup`` (``CreateRequest``,
``VerifyRequest``, ``ListRequest``, ``RestoreRequest``): the plan and the backups commands
build it with ``argv()``, the tool reads it back with ``parse_request``. Each result is a
control line on stderr (``jobs.protocol.lines``) of that module's result types.

``create`` archives the SOURCE paths with GNU tar (its own default format: long and
non-ASCII names, numeric owners, permissions, symlinks, hard links, empty directories;
modification times to the second), compressed by zstd or gzip, encrypted by age to each
``--recipient`` if any (or with the passphrase on stdin), into ``DIR/<job>-<UTC
time>.tar[.zst|.gz][.age]``. The archive is written under ``<name>.partial``, its sha256
computed on the way, flushed to disk, then renamed; ``<name>.sha256`` (sha256sum format) is
written the same way. A killed run therefore never leaves a final-named incomplete archive,
and the next ``create`` removes the job's stale ``.partial`` files; then the job's
retention deletes the archives it does not keep. The result (``CreateResult``): archive,
bytes (of the archive), files, data_bytes (of the tar stream, before compression), sha256,
archive_s (seconds it took), deleted, sources, throughput_mib_s.

``restore`` verifies the checksum, decrypts an ``….age`` archive on the way with the age
identity file (``--identity-stdin``; held in memory) or the passphrase read on stdin, lists
the archive (``tar --list``), and refuses before writing anything if a member is under none
of the volumes mounted here (the target excepted). It then extracts, in one tar pass, each
volume's members into a new staging directory in that volume
(``.crontainer-restore-<hex>``, the deepest mount for nested ones), and moves the staged
tree into place with renames on one file system, following no link already in the volume:
directories merge into real directories, anything else in the way is replaced. A failed
extraction removes the staging directories (the volumes are untouched); a move that fails
half-way stops and names the staging directory that holds the rest. Entries the archive
does not hold are kept. The result (``RestoreResult``): archive, restored_to (the root),
volumes (those written), entries (members restored), duration_s.

The modules: ``cli`` (``main``: the request run, its result emitted), ``archive``
(``create``, the sources a run archives), ``pipeline`` (tar, the compressor and age writing
the archive, its sha256 computed behind them), ``keys`` (age's identity or passphrase),
``listing`` (``listing``, ``verify``, ``prune``), ``restore`` (staging and placing) over
``reading`` (tar reading an archive), and ``processes`` (the tool's error, starting its
programs); ``__main__`` runs ``cli.main``.
"""
