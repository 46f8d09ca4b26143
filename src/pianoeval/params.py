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


def mirror_folder(configured: str | Path, environ: dict | None = None) -> Path:
    """The data mirror named by ``ingest.mirror``, checked.

    The mirror is a DVC dependency of ``ingest``, so the folder that is read must be the one
    params.yaml names: ``PIANOEVAL_DATA_MIRROR``, when set, has to name the same folder (set the
    key instead, e.g. ``dvc exp run -S ingest.mirror=/path``). ValueError when they differ,
    FileNotFoundError naming the path when the folder is missing.
    """
    environ = os.environ if environ is None else environ
    mirror = Path(configured).expanduser()
    from_env = environ.get(MIRROR_ENV)
    if from_env and Path(from_env).expanduser().resolve() != mirror.resolve():
        raise ValueError(
            f"{MIRROR_ENV}={from_env} but params.yaml ingest.mirror is {configured}: DVC tracks "
            f"the key, so set it (dvc exp run -S ingest.mirror={from_env}) or unset {MIRROR_ENV}")
    if not mirror.is_dir():
        raise FileNotFoundError(
            f"ingest.mirror: {mirror} is not a folder (a copy of the data mirror is expected "
            f"there; `pianoeval download SOURCE` fetches a pinned archive into it)")
    return mirror
