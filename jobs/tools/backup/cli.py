"""The tool's command line: its commands parsed, run, and their result emitted as a control
line (``python -m jobs.tools.backup`` runs ``main``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from jobs.protocol.lines import emit, say
from jobs.retention import SUFFIXES, Retention
from jobs.tools.backup.archive import create, target_aliases, volume_mounts
from jobs.tools.backup.listing import listing, prune, verify
from jobs.tools.backup.processes import TOOL, ToolError
from jobs.tools.backup.restore import restore


def _create_command(args: argparse.Namespace) -> dict[str, object]:
    points = volume_mounts(args.target)
    aliases = target_aliases(args.target, points)
    for alias in aliases:
        say(TOOL, f"{alias} is the target volume mounted again: left out of the archive")
    sources = list(args.sources)
    if args.mounts:
        sources += [p for p in points if p not in aliases]
    if not sources:
        raise ToolError("nothing to back up: no source path and no volume mounted")
    result = create(args.job, args.target, sources, args.compression, exclude=aliases)
    policy = Retention(
        args.keep_last, args.keep_daily, args.keep_weekly, args.keep_monthly, args.timezone
    )
    result["deleted"], future = prune(args.job, args.target, policy, str(result["archive"]))
    if future:
        emit({"warning": {"event": "backup.future_archive", "archives": future}})
    result["sources"] = [str(s) for s in sources]
    seconds = max(float(str(result["archive_s"])), 0.001)
    measured = result["data_bytes"] or result["bytes"]
    result["throughput_mib_s"] = round(int(str(measured)) / seconds / (1 << 20), 1)
    return result


def main(argv: list[str] | None = None) -> int:
    """Entry point: exit 0 with a JSON line, or 1 with the error on stderr."""
    parser = argparse.ArgumentParser(prog="python -m jobs.tools.backup")
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("create")
    make.add_argument("--job", required=True)
    make.add_argument("--target", required=True, type=Path)
    make.add_argument("--compression", choices=sorted(SUFFIXES), default="zstd")
    make.add_argument("--mounts", action="store_true", help="back up every volume mounted here")
    for rule in ("last", "daily", "weekly", "monthly"):
        make.add_argument(f"--keep-{rule}", type=int)
    make.add_argument("--timezone", default="UTC", help="the zone of days, weeks and months")
    make.add_argument("sources", nargs="*", type=Path)
    check = commands.add_parser("verify")
    check.add_argument("--target", required=True, type=Path)
    check.add_argument("archive")
    back = commands.add_parser("restore")
    back.add_argument("--target", required=True, type=Path)
    back.add_argument("--root", type=Path, default=Path("/"))
    back.add_argument(
        "--only", action="append", help="restore just this archived path (repeatable)"
    )
    back.add_argument("archive")
    show = commands.add_parser("list")
    show.add_argument("--job", required=True)
    show.add_argument("--target", required=True, type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "create":
            result: dict[str, object] = _create_command(args)
        elif args.command == "verify":
            result = {"archive": args.archive, "sha256": verify(args.target, args.archive)}
        elif args.command == "list":
            result = {"archives": listing(args.job, args.target)}
        else:
            mounts = volume_mounts(args.target)
            result = restore(args.target, args.archive, mounts, args.only, args.root)
    except ToolError as e:
        say(TOOL, str(e))
        return 1
    emit({"result": result})
    return 0
