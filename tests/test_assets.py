import subprocess
import sys

import pytest

from pianoeval.assets import PARTITURA_SOUNDFONT, link_partitura_soundfont, partitura_assets_dir


def test_link_is_idempotent_and_replaces_a_wrong_link(tmp_path):
    font, other = tmp_path / "font.sf3", tmp_path / "other.sf3"
    font.write_bytes(b"sf3")
    other.write_bytes(b"x")
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / PARTITURA_SOUNDFONT).symlink_to(other)
    link = link_partitura_soundfont(font, assets)
    assert link.resolve() == font.resolve()
    assert link_partitura_soundfont(font, assets) == link
    with pytest.raises(FileNotFoundError, match="musescore-general-soundfont"):
        link_partitura_soundfont(tmp_path / "missing.sf3", assets)


def test_import_partitura_works_offline_with_fluidsynth_installed():
    """With pyfluidsynth importable, partitura fetches its soundfont at import unless the
    install step linked Debian's copy into place; offline that fetch would crash the import."""
    subprocess.run([sys.executable, "-c", "import fluidsynth"], check=True)  # the trap is armed
    assert (partitura_assets_dir() / PARTITURA_SOUNDFONT).is_file()
    done = subprocess.run([sys.executable, "-c", "import partitura; print(partitura.__name__)"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Downloading soundfont" not in done.stdout
