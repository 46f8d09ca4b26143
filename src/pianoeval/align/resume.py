"""Per-item alignment results kept on disk, so an interrupted run resumes where it stopped.

Aligning every ASAP performance costs ~90 CPU-minutes; a killed run used to lose all of it.
Each finished item is pickled under a key made of everything its result depends on: the code
of the alignment (this package's sources and the parangonar / partitura versions), the
configuration, the item, and the bytes of its performance and score files. A changed input
gives a new key, so a stale result is never reused; old files are simply left behind.
"""
from __future__ import annotations

import functools
import hashlib
import os
import pickle
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]  # src/pianoeval
CODE_FILES = ("align/*.py", "data/midi.py", "data/segments.py", "features/inputs.py",
              "features/symbolic.py", "features/kernel.py")


@functools.cache
def code_version() -> str:
    """Digest of the source files the alignment runs and of the matcher libraries' versions."""
    from importlib.metadata import version

    h = hashlib.sha256()
    for pattern in CODE_FILES:
        for path in sorted(PACKAGE.glob(pattern)):
            h.update(path.name.encode() + path.read_bytes())
    for lib in ("parangonar", "partitura", "symusic", "numpy"):
        h.update(f"{lib}={version(lib)}".encode())
    return h.hexdigest()


def file_digest(path: str | None) -> str:
    if path is None or not Path(path).is_file():
        return "-"
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class ResultCache:
    """``get(item)`` / ``put(item, result)`` over ``folder``; ``folder=None`` caches nothing."""

    def __init__(self, folder: str | Path | None, config) -> None:
        self.folder = None if folder is None else Path(folder)
        self.salt = code_version() + repr(config)

    def key(self, item) -> str:
        h = hashlib.sha256(self.salt.encode())
        h.update(repr(item).encode())
        h.update(file_digest(item.performance).encode() + file_digest(item.score).encode())
        return h.hexdigest()

    def get(self, item):
        if self.folder is None:
            return None
        path = self.folder / f"{self.key(item)}.pkl"
        try:
            with open(path, "rb") as fh:
                return pickle.load(fh)
        except (OSError, pickle.UnpicklingError, EOFError):  # absent or cut short by a kill
            return None

    def put(self, item, result) -> None:
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{self.key(item)}.pkl"
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            pickle.dump(result, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)  # atomic: a kill never leaves a half-written result
