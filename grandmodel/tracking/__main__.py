"""``python -m grandmodel.tracking sync run=<run folder> [uri=<tracking URI>]``: replay a run's local
record into its tracking store (after an outage), creating the run there if it never reached it."""

from __future__ import annotations

import sys
from pathlib import Path

from grandmodel.tracking.record import LocalRecord
from grandmodel.tracking.store import StoreUnavailable, connect, replay

USAGE = "usage: python -m grandmodel.tracking sync run=<run folder> [uri=<tracking URI>]"


def sync(argv: list[str]) -> str:
    """Replay ``run=`` into ``uri=`` (default: the URI the run was started with); returns a line."""
    if not argv or argv[0] != "sync":
        raise ValueError(
            f"command: {' '.join(argv[:1]) or 'none'} is unknown; expected sync ({USAGE})"
        )
    args = dict(a.split("=", 1) for a in argv[1:] if "=" in a)
    unknown = [a for a in argv[1:] if "=" not in a or a.split("=", 1)[0] not in ("run", "uri")]
    if unknown or "run" not in args:
        raise ValueError(f"{unknown[0] if unknown else 'run'}: not understood; expected {USAGE}")
    record = LocalRecord(Path(args["run"]))
    start = record.start_op()
    if start is None:
        raise ValueError(
            f"run={args['run']}: no local record ({record.path}); expected a run folder"
        )
    uri = args.get("uri") or start.get("uri")
    if not uri:
        raise ValueError(
            f"run={args['run']}: the run had no tracking store; expected uri=<tracking URI>"
        )
    before = record.synced
    run_id = replay(record, connect(uri))
    size = record.path.stat().st_size
    return f"synced {record.path} ({size - before} of {size} bytes were pending) into {uri}, run {run_id}"


def main() -> None:
    try:
        print(sync(sys.argv[1:]))
    except (ValueError, StoreUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
