"""Progress of a long load for the command line: one line per file (or SQL batch) with
the rows read so far and the rate."""
from __future__ import annotations

import time
from typing import Callable

from .summary import FileResult


class Progress:
    """Called with (number, total, result) after each file; prints a line through
    ``echo``. ``total`` 0 means a SQL source, whose batches are not counted ahead."""

    def __init__(self, echo: Callable[[str], None], clock: Callable[[], float] = time.perf_counter):
        self.echo = echo
        self.clock = clock
        self.started = clock()
        self.rows = 0

    def __call__(self, number: int, total: int, result: FileResult) -> None:
        self.rows += result.read
        position = f"[{number}/{total}]" if total else f"[batch {number}]"
        self.echo(f"{position} {result.line()} | {self.rows:,} rows in {self.elapsed():.1f} s, "
                  f"{self.rate():,.0f} rows/s")

    def elapsed(self) -> float:
        return self.clock() - self.started

    def rate(self) -> float:
        elapsed = self.elapsed()
        return self.rows / elapsed if elapsed > 0 else 0.0

    def final(self) -> str:
        """The closing line: rows, time and rate of the whole load."""
        return f"Load took {self.elapsed():.1f} s: {self.rows:,} rows read, {self.rate():,.0f} rows/s."
