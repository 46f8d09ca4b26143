"""Read a section of params.yaml; resolve the data mirror."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

MIRROR_ENV = "PIANOEVAL_DATA_MIRROR"


def load_params(section: str, path: str | Path = "params.yaml") -> dict[str, Any]:
    """Return one stage's section of params.yaml; KeyError names the file and the section."""
    with open(path) as fh:
        params = yaml.safe_load(fh) or {}
    if section not in params:
        raise KeyError(f"{path}: no section {section!r} (have: {sorted(params)})")
    return params[section]


def mirror_root(configured: str | Path | None) -> Path | None:
    """The data mirror: env PIANOEVAL_DATA_MIRROR, else the configured folder; None if absent."""
    candidate = os.environ.get(MIRROR_ENV) or configured
    if candidate and Path(candidate).is_dir():
        return Path(candidate)
    return None
