"""A dependency-free progress bar for long steps (checkpoint creation, reference runs, evaluation)."""
from __future__ import annotations

import sys
import time


class Progress:
    """``label [#####.....] done/total unit elapsed note`` on one line of ``stream`` (stderr), redrawn per step.

    ``unit`` names what is counted ("images"); ``step(count=n)`` advances by a whole batch at once."""

    def __init__(self, total: int, label: str, stream=None, unit: str = ""):
        self.total, self.label, self.done, self.unit = max(total, 1), label, 0, unit
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()
        self._draw()

    def step(self, note: str = "", count: int = 1):
        self.done = min(self.done + count, self.total)
        self._draw(note)

    def _draw(self, note: str = ""):
        width = 28
        filled = int(width * self.done / self.total)
        elapsed = time.perf_counter() - self.start
        counted = f"{self.done}/{self.total}" + (f" {self.unit}" if self.unit else "")
        self.stream.write(f"\r{self.label:<28} [{'#' * filled}{'.' * (width - filled)}] "
                          f"{counted} {elapsed:6.1f}s {note:<24}")
        if self.done >= self.total:
            self.stream.write("\n")
        self.stream.flush()
