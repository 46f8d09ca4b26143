"""DVC stage `train_sequence`: note-sequence models (Bi-LSTM + attention pooling), one per fold.

For every ablation named on the command line (default: all in ``train_sequence.models``) and
every split in ``train_sequence.splits``: 4 fold models, out-of-fold and test-set predictions in
``metrics/predictions/<model>/<protocol>.csv``, checkpoints in
``models/sequence/<model>/<split>_<k>.pt``, per-epoch losses in
``metrics/train_sequence/<model>.jsonl`` and a summary in ``metrics/train_sequence/<model>.json``.
"""
import argparse
import json
import shutil
from pathlib import Path

import pandas as pd
import torch

from pianoeval.evaluate.inputs import write_predictions
from pianoeval.logs import setup_logging
from pianoeval.params import load_params, resolve_profile
from pianoeval.sequence.variants import history_jsonl, sequence_notes, train_ablation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="ablations to train (default: all in params)")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--notes", default="data/align/percepiano/notes.csv")
    parser.add_argument("--labels", default="data/labels.csv")
    parser.add_argument("--splits", default="data/splits.csv")
    parser.add_argument("--predictions", type=Path, default=Path("metrics/predictions"))
    parser.add_argument("--checkpoints", type=Path, default=Path("models/sequence"))
    parser.add_argument("--logs", type=Path, default=Path("metrics/train_sequence"))
    args = parser.parse_args()
    setup_logging()

    section = resolve_profile(load_params("train_sequence", args.params), "train_sequence")
    labels, splits = pd.read_csv(args.labels), pd.read_csv(args.splits, dtype=str)
    notes = sequence_notes(pd.read_csv(args.notes), labels, section)

    for name in args.models or list(section["models"]):
        predictions, models, summary = train_ablation(section, name, notes, labels, splits)
        write_predictions(args.predictions / name, predictions)
        ckpt = args.checkpoints / name
        shutil.rmtree(ckpt, ignore_errors=True)  # no checkpoint of an earlier run's folds left
        ckpt.mkdir(parents=True)
        for fold, fm in models.items():
            torch.save(fm.checkpoint(), ckpt / f"{fold}.pt")
        args.logs.mkdir(parents=True, exist_ok=True)
        (args.logs / f"{name}.jsonl").write_text(history_jsonl(models))
        (args.logs / f"{name}.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
