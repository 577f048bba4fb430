"""Terminal output for the CLI: the only module that prints.

Library functions take an optional ``progress`` callback ``(done, total) -> None``;
the CLI passes one from here. On a terminal it draws a rich progress bar on stderr,
when piped it stays quiet (https://rich.readthedocs.io/en/stable/progress.html).
"""
from __future__ import annotations

import contextlib
import sys
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

ProgressCallback = Callable[[int, int], None]


class UI:
    def __init__(self, quiet: bool = False):
        self.out = Console(highlight=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)
        self.quiet = quiet
        self.interactive = self.err.is_terminal and not quiet

    def info(self, text: str) -> None:
        if not self.quiet:
            self.out.print(text, markup=False)

    def warn(self, text: str) -> None:
        self.err.print(f"syspage: warning: {text}", markup=False)

    def error(self, text: str) -> None:
        # One line, no markup, so it stays greppable.
        print(f"syspage: error: {text}", file=sys.stderr)

    def table(self, title: str, columns: list[str], rows: list[list[object]]) -> None:
        if self.quiet:
            return
        table = Table(title=title)
        for col in columns:
            table.add_column(col)
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        self.out.print(table)

    @contextlib.contextmanager
    def progress(self, description: str) -> Iterator[ProgressCallback | None]:
        """A progress callback for library code; None when not on a terminal."""
        if not self.interactive:
            yield None
            return
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=self.err, transient=True) as bar:
            task = bar.add_task(description, total=None)

            def update(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total or None)

            yield update
