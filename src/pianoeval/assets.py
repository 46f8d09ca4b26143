"""Offline assets for third-party libraries.

partitura downloads ``MuseScore_General.sf3`` into its ``assets/`` folder at import time once
pyfluidsynth imports, which crashes offline. Debian's musescore-general-soundfont ships the same
soundfont; linking it into place makes ``import partitura`` work without a network.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

DEBIAN_SOUNDFONT = Path("/usr/share/sounds/sf3/MuseScore_General_Full.sf3")
PARTITURA_SOUNDFONT = "MuseScore_General.sf3"


def partitura_assets_dir() -> Path:
    """partitura's assets folder, found without importing partitura (that would download)."""
    spec = importlib.util.find_spec("partitura")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("partitura is not installed in this environment")
    return Path(list(spec.submodule_search_locations)[0]) / "assets"


def link_partitura_soundfont(source: Path = DEBIAN_SOUNDFONT, assets: Path | None = None) -> Path:
    """Link ``source`` to partitura's expected soundfont path; idempotent. Returns the link."""
    if not source.is_file():
        raise FileNotFoundError(
            f"{source} is missing: install Debian's musescore-general-soundfont "
            "(apt-get install musescore-general-soundfont), or run `make setup` as root")
    target = (assets or partitura_assets_dir()) / PARTITURA_SOUNDFONT
    if target.is_symlink() or target.exists():
        if target.resolve() == source.resolve():
            return target
        target.unlink()
    target.symlink_to(source)
    return target


if __name__ == "__main__":
    print(f"linked {link_partitura_soundfont()}", file=sys.stderr)
