"""User-facing errors: one line that names the file, row or key and what was expected."""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from grandmodel.config.base import ConfigError


class GrandModelError(Exception):
    """Base of the errors a user can fix (bad data, missing file, wrong run id)."""


class DataError(GrandModelError):
    """Market data that cannot be used as given."""


class TrainingStopped(GrandModelError):
    """Training stopped on a guard (non-finite loss or parameters); exit status 3."""

    exit_code = 3


USER_ERRORS: tuple[type[Exception], ...] = (GrandModelError, ConfigError)


@contextmanager
def reported(run_dir: str | Path | None = None) -> Iterator[None]:
    """Turn a user error into ``error: <one line>`` on stderr and exit status 2; no traceback.

    ``run_dir``: the run's output folder; removed on such an error when it holds nothing but Hydra's
    own bookkeeping (``.hydra/`` and logs), so a rejected run leaves nothing half-written.
    """
    try:
        yield
    except USER_ERRORS as exc:
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        if run_dir is not None:
            remove_if_bookkeeping(Path(run_dir))
        raise SystemExit(getattr(exc, "exit_code", 2)) from None


def remove_if_bookkeeping(folder: Path) -> None:
    """Delete ``folder`` (and its parent, if that is left empty) when it only holds Hydra's
    ``.hydra/`` and ``*.log`` files."""
    if not folder.is_dir():
        return
    if all(p.name == ".hydra" or p.suffix == ".log" for p in folder.iterdir()):
        shutil.rmtree(folder, ignore_errors=True)
        if not any(folder.parent.iterdir()):
            folder.parent.rmdir()


def one_line(text: str) -> str:
    """Collapse a message to one line, as plain text: no terminal colour codes, and numpy scalars
    as the numbers they hold (``np.float64(nan)`` reads ``nan``)."""
    text = _NUMPY_SCALAR.sub(r"\1", _ANSI.sub("", text))
    return " ".join(part.strip() for part in text.strip().splitlines() if part.strip())


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_NUMPY_SCALAR = re.compile(r"\bnp\.(?:float|int|uint|complex)\d*\(([^()]*)\)")
