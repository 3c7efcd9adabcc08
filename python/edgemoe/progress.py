"""A dependency-free progress bar for long steps (checkpoint creation, reference runs)."""
from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int, label: str, stream=None):
        self.total, self.label, self.done = max(total, 1), label, 0
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()
        self._draw()

    def step(self, note: str = ""):
        self.done += 1
        self._draw(note)

    def _draw(self, note: str = ""):
        width = 28
        filled = int(width * self.done / self.total)
        elapsed = time.perf_counter() - self.start
        self.stream.write(f"\r{self.label:<28} [{'#' * filled}{'.' * (width - filled)}] "
                          f"{self.done}/{self.total} {elapsed:6.1f}s {note:<24}")
        if self.done >= self.total:
            self.stream.write("\n")
        self.stream.flush()
