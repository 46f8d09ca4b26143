"""Training time per fold model of the note-sequence ablations -> benchmarks/train.md.

Trains fold model 0 of each split in ``train_sequence.splits`` for every ablation, one process
with ``train_sequence.num_threads`` threads (the stage runs ``n_jobs`` of these at once), on the
full data: wall and CPU seconds, epochs run (early stopping), seconds per epoch.
Needs `dvc repro align@percepiano labels splits` first.

    .venv/bin/python benchmarks/train_bench.py [--out benchmarks/train.md]
"""
import argparse
import datetime
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from pianoeval.data.dimensions import DIMENSIONS
from pianoeval.data.splits import fold_masks, inner_validation, split_columns
from pianoeval.params import load_params, resolve_profile
from pianoeval.sequence.data import load_notes
from pianoeval.sequence.train import fit_fold
from pianoeval.sequence.variants import ablation, all_feature_columns

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from run import machine  # noqa: E402  (benchmarks/run.py: the machine description)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "train.md")
    args = parser.parse_args()
    section = resolve_profile(load_params("train_sequence", ROOT / "params.yaml"), "train_sequence")
    labels = pd.read_csv(ROOT / "data" / "labels.csv")
    splits = pd.read_csv(ROOT / "data" / "splits.csv", dtype=str)
    notes = load_notes(pd.read_csv(ROOT / "data" / "align" / "percepiano" / "notes.csv"),
                       all_feature_columns(section))
    segments = sorted(set(labels["segment"]) & set(splits["segment"]) & set(notes.segments))
    Y = labels.set_index("segment").loc[segments, list(DIMENSIONS)].to_numpy(float)
    split_rows = splits.set_index("segment").loc[segments]
    rows = []
    for name in section["models"]:
        columns, model_cfg, train_cfg = ablation(section, name)
        data = notes.select(segments).subset_columns(columns)
        for split in section["splits"]:
            values = split_rows[next(iter(split_columns(split_rows, [split], piece_seeds=1).values()))]
            k, train, _, _ = next(fold_masks(values))
            val = inner_validation(values, k, train)
            fm = fit_fold(data, Y, np.flatnonzero(train & ~val), np.flatnonzero(val), model_cfg,
                          train_cfg)
            epochs = len(fm.history)
            rows.append(f"| {name} | {split} | {int(train.sum())} | {epochs} | {fm.seconds:.0f} | "
                        f"{fm.cpu_seconds:.0f} | {fm.seconds / epochs:.1f} |")
            print(rows[-1], flush=True)
    text = "\n".join([
        "# Note-sequence models: training time per fold model", "",
        f"Machine: {machine()}; torch threads per fold model: {section['num_threads']}, "
        f"device {section['device']}. Measured {datetime.date.today().isoformat()} with "
        "`benchmarks/train_bench.py` (fold model 0 of each split; other work may share the "
        f"cores). The stage trains {section['n_jobs']} fold models at once, 4 per split.", "",
        "| ablation | split | training segments | epochs (early stopping) | wall s | CPU s | s/epoch |",
        "|---|---|---|---|---|---|---|", *rows, ""])
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
