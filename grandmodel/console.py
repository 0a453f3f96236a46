"""Rich console for the command-line tools: the terminal's width, or 120 columns when piped."""

from __future__ import annotations

import sys

from rich.console import Console


def make_console() -> Console:
    return Console(width=None if sys.stdout.isatty() else 120)
