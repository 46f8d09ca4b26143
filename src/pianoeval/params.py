"""Read a section of params.yaml; resolve the data mirror."""
from __future__ import annotations

import copy
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


def merge_params(base: dict, over: dict) -> dict:
    """A deep copy of ``base`` with ``over`` merged in: nested dicts key by key, anything else
    replaced."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        out[key] = (merge_params(out[key], value)
                    if isinstance(value, dict) and isinstance(out.get(key), dict) else value)
    return out


def resolve_profile(section: dict, stage: str) -> dict:
    """The params section with ``profiles[profile]`` merged over it (no profile: unchanged);
    KeyError names the stage and the profiles it has."""
    profile = section.get("profile")
    if not profile:
        return section
    profiles = section.get("profiles") or {}
    if profile not in profiles:
        raise KeyError(f"{stage}.profile {profile!r} not in profiles {sorted(profiles)}")
    return merge_params(section, profiles[profile])


def mirror_root(configured: str | Path | None) -> Path | None:
    """The data mirror: env PIANOEVAL_DATA_MIRROR, else the configured folder; None if absent."""
    candidate = os.environ.get(MIRROR_ENV) or configured
    if candidate and Path(candidate).is_dir():
        return Path(candidate)
    return None
