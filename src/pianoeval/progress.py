"""Progress of a long stage loop: a tqdm bar on a terminal, periodic log lines elsewhere.

``with Progress("train_audio", 40, "fold models") as progress: ... progress.update()``

On a terminal (stderr is a tty) this is a plain tqdm bar, with the stage's log lines printed
above it (``tqdm.contrib.logging.logging_redirect_tqdm``). When stderr is not a terminal (the
log of a ``dvc repro`` run, CI), it logs one line at INFO on start, then at most every
``interval`` seconds, plus the last one::

    train_audio: 12/40 fold models (30%), 1m05s elapsed, ETA 2m31s

Why not tqdm there too: tqdm redraws its bar in place with carriage returns, so a file gets
every refresh glued onto one ever-growing line (``mininterval`` only thins them), and its
output bypasses logging (no timestamps, not interleaved with the stage's own log lines).
tqdm has no line-per-update mode; ``logging_redirect_tqdm`` goes the other way (log records
through tqdm). So the non-terminal path writes its own line through ``logging``.
"""
from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import TextIO

log = logging.getLogger(__name__)


def format_seconds(seconds: float) -> str:
    """``45s``, ``1m05s``, ``2h03m``."""
    s = int(round(max(seconds, 0.0)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Progress:
    """Count ``total`` steps of ``unit`` (e.g. "fold models") under ``name`` (the stage).

    ``tty``: None asks ``stream.isatty()``; ``interval``: least seconds between two log lines
    (non-terminal path); ``clock``: seconds, monotonic (injected in tests)."""

    def __init__(self, name: str, total: int, unit: str = "steps", *, interval: float = 30.0,
                 stream: TextIO | None = None, tty: bool | None = None,
                 logger: logging.Logger | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.name, self.total, self.unit, self.interval = name, int(total), unit, interval
        self.stream = stream if stream is not None else sys.stderr
        self.tty = _isatty(self.stream) if tty is None else tty
        self.log, self.clock = logger or log, clock
        self.n, self.start = 0, clock()
        self._bar = self._redirect = None
        self._logged_n: int | None = None
        self._logged_at = self.start
        if self.tty:
            from tqdm import tqdm
            from tqdm.contrib.logging import logging_redirect_tqdm

            self._redirect = logging_redirect_tqdm()
            self._redirect.__enter__()
            self._bar = tqdm(total=self.total, desc=name, unit=f" {unit}", file=self.stream,
                             dynamic_ncols=True)
        else:
            self._emit()

    def line(self) -> str:
        """``<name>: <n>/<total> <unit> (<pct>%), <elapsed> elapsed, ETA <eta>``."""
        elapsed = self.clock() - self.start
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        text = f"{self.name}: {self.n}/{self.total} {self.unit}{pct}, " \
               f"{format_seconds(elapsed)} elapsed"
        if 0 < self.n < self.total:
            text += f", ETA {format_seconds(elapsed / self.n * (self.total - self.n))}"
        elif self.n >= self.total and self.total:
            text += ", done"
        return text

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.n >= self.total or self.clock() - self._logged_at >= self.interval:
            self._emit()

    def close(self) -> None:
        """Closes the bar, or logs the last count if it was not logged yet."""
        if self._bar is not None:
            self._bar.close()
            self._redirect.__exit__(None, None, None)
            self._bar = None
        elif not self.tty and self._logged_n != self.n:
            self._emit()

    def _emit(self) -> None:
        self.log.info(self.line())
        self._logged_n, self._logged_at = self.n, self.clock()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
