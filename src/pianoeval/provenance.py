"""What a result kept across runs (a checkpoint, a cache entry) was made by, as a digest: a kept
result is reused only by the same code, library versions and inputs."""
from __future__ import annotations

import hashlib
import sys
from importlib.metadata import version
from pathlib import Path


def loaded_code_digest(libraries: tuple[str, ...] = ("numpy", "torch")) -> str:
    """Digest of the source of every ``pianoeval`` module loaded in this process and of the
    ``libraries``' versions. Called once the code that makes a result is imported, it changes
    whenever that code may have."""
    h = hashlib.sha256()
    for name in sorted(sys.modules):
        file = getattr(sys.modules[name], "__file__", None)
        if (name == "pianoeval" or name.startswith("pianoeval.")) and file:
            h.update(name.encode() + b"\0" + Path(file).read_bytes())
    for library in libraries:
        h.update(f"{library}={version(library)}".encode())
    return h.hexdigest()
