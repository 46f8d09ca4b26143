import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_generated_data_is_not_tracked_by_git():
    """Generated data and models live in the DVC cache, never in git; no tracked file (a plot
    table included: every clone must render it) exceeds 5 MiB."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.splitlines()
    assert tracked, "not a git checkout"
    generated = [p for p in tracked if not p.endswith(".gitignore")
                 and p.startswith(("data/raw/", "data/features/", "models/baselines/"))
                 or p == "data/labels.csv"]
    assert generated == []
    too_big = [p for p in tracked if (ROOT / p).is_file() and (ROOT / p).stat().st_size > 5 << 20]
    assert too_big == []
