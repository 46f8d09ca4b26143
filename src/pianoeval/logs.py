"""Logging of a stage script: one format, and tqdm bars that stay readable in a log file.

``setup_logging()`` opens a stage's ``main()``. On a terminal, tqdm bars redraw in place as
usual. When stderr is not a terminal (``dvc repro > log``, CI), tqdm still redraws its bar with
carriage returns, and a file shows every refresh glued onto one ever-growing line;
:class:`TqdmLines` turns the redraws into one line at most every ``interval`` seconds, plus the
bar's final state. A stream wrapper rather than options at each bar: the bars are drawn inside
library functions (render, align, encode, ...) that also serve terminals, and tqdm has no
line-per-update mode (``mininterval`` only thins the refreshes).
"""
from __future__ import annotations

import io
import logging
import re
import sys
import time
from collections.abc import Callable
from typing import TextIO

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_TIMES = re.compile(r"\s*\[[^\]]*\]\s*$")  # tqdm's trailing "[elapsed<remaining, rate]"


class TqdmLines(io.TextIOBase):
    """Writes to ``stream``; tqdm's in-place redraws (``"\\r" + bar``) become whole lines.

    The latest redraw is kept and written as its own line when ``interval`` seconds have
    passed since the last one written (the first redraw of a bar always is), and when tqdm
    closes the bar (its ``"\\n"``). A redraw that shows the count already written is dropped,
    so the final count is always there and never twice. Text without carriage returns (log
    records) passes through unchanged."""

    def __init__(self, stream: TextIO, interval: float = 30.0,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.stream, self.interval, self.clock = stream, float(interval), clock
        self._bar: str | None = None  # the latest redraw not yet written
        self._written: str | None = None  # the last one written, without its times
        self._written_at: float | None = None  # None: the next redraw opens a bar

    @property
    def encoding(self):  # tqdm picks its bar characters from it
        return getattr(self.stream, "encoding", None)

    def write(self, text: str) -> int:
        head, *redraws = text.split("\r")
        if head.startswith("\n") and self._written_at is not None:  # tqdm closing the bar
            if self._bar is not None:
                self._write_bar()
            self._bar = self._written_at = None
            head = head[1:]
        if head:
            self.stream.write(head)
        for bar in (b.rstrip() for b in redraws):
            if not bar:  # tqdm clearing a bar it does not leave
                continue
            if _TIMES.sub("", bar) == self._written:  # nothing new, e.g. the closing redraw
                continue
            self._bar = bar
            now = self.clock()
            if self._written_at is None or now - self._written_at >= self.interval:
                self._write_bar()
                self._written_at = now
        return len(text)

    def _write_bar(self) -> None:
        self.stream.write(self._bar + "\n")
        self._written, self._bar = _TIMES.sub("", self._bar), None

    def flush(self) -> None:
        self.stream.flush()

    def fileno(self) -> int:  # the stream's own descriptor, for code that writes to it directly
        return self.stream.fileno()

    @property
    def buffer(self):
        return self.stream.buffer

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True


def setup_logging(name: str | None = None, interval: float = 30.0) -> logging.Logger:
    """INFO logging to stderr in :data:`FORMAT`, and the logger ``name`` (the stage's). When
    stderr is not a terminal it is first wrapped in :class:`TqdmLines` (progress lines at most
    every ``interval`` seconds)."""
    if not sys.stderr.isatty() and not isinstance(sys.stderr, TqdmLines):
        sys.stderr = TqdmLines(sys.stderr, interval)
    logging.basicConfig(level=logging.INFO, format=FORMAT, stream=sys.stderr)
    return logging.getLogger(name)
