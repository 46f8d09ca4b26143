import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_generated_data_is_not_tracked_by_git():
    """Generated data, models and large plots live in the DVC cache, never in git."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.splitlines()
    assert tracked, "not a git checkout"
    generated = [p for p in tracked if not p.endswith(".gitignore")
                 and p.startswith(("data/raw/", "data/features/", "models/baselines/"))
                 or p in ("data/labels.csv", "metrics/plots/pred_vs_true.csv")]
    assert generated == []
    too_big = [p for p in tracked if (ROOT / p).is_file() and (ROOT / p).stat().st_size > 5 << 20]
    assert too_big == []
