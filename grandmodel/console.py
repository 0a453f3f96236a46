"""Console output of the command-line tools: a rich console (the terminal's width, or 120 columns
when piped) and progress over a known number of steps."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

Advance = Callable[[str], None]


def make_console() -> Console:
    return Console(width=None if sys.stdout.isatty() else 120)


@contextmanager
def progress(total: int, what: str, logger: logging.Logger) -> Iterator[Advance]:
    """``advance(label)`` after each of ``total`` steps: a rich progress bar on a terminal (on
    stderr, gone when done), and one log line per step either way (the run's ``.log`` file)."""
    done = 0
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=not sys.stderr.isatty(),
    ) as bar:
        task = bar.add_task(what, total=total)

        def advance(label: str) -> None:
            nonlocal done
            done += 1
            bar.update(task, advance=1, description=f"{what}: {label}")
            logger.info("%s %d/%d: %s", what, done, total, label)

        yield advance
