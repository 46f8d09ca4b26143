"""DVC stage `train_sequence`: note-sequence models (Bi-LSTM + attention pooling), one per fold.

For every ablation named on the command line (default: all in ``train_sequence.models``) and
every split in ``train_sequence.splits``: 4 fold models, out-of-fold and test-set predictions in
``metrics/predictions/<model>/<protocol>.csv``, checkpoints in
``models/sequence/<model>/<split>_<k>.pt``, per-epoch losses in
``metrics/train_sequence/<model>.jsonl`` and a summary in ``metrics/train_sequence/<model>.json``.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path

import pandas as pd
import torch

from pianoeval.models.hierarchical import HierarchicalAttentionModel, n_parameters
from pianoeval.params import load_params, resolve_profile
from pianoeval.train.data import load_notes
from pianoeval.train.sequence import ablation, all_feature_columns, cross_fit_sequence

log = logging.getLogger("train_sequence")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="ablations to train (default: all in params)")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--notes", default="data/align/percepiano/notes.csv")
    parser.add_argument("--labels", default="data/labels.csv")
    parser.add_argument("--splits", default="data/splits.csv")
    parser.add_argument("--predictions", default="metrics/predictions")
    parser.add_argument("--checkpoints", default="models/sequence")
    parser.add_argument("--logs", default="metrics/train_sequence")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    section = resolve_profile(load_params("train_sequence", args.params), "train_sequence")
    labels = pd.read_csv(args.labels)
    splits = pd.read_csv(args.splits, dtype=str)
    notes = load_notes(pd.read_csv(args.notes), all_feature_columns(section))
    missing = sorted(set(labels["segment"]) - set(notes.segments))
    if missing:
        log.warning("%d labelled segments have no notes and are left out, e.g. %s",
                    len(missing), missing[:3])

    for name in args.models or list(section["models"]):
        columns, model_cfg, train_cfg = ablation(section, name)
        log.info("%s: %d features %s, hierarchical=%s, %d parameters, splits %s", name,
                 len(columns), columns, model_cfg.hierarchical,
                 n_parameters(HierarchicalAttentionModel(model_cfg)), section["splits"])
        start = time.perf_counter()
        predictions, models = cross_fit_sequence(notes, labels, splits, columns, model_cfg,
                                                 train_cfg, section["splits"],
                                                 n_jobs=section["n_jobs"],
                                                 piece_seeds=section["piece_seeds"])
        seconds = time.perf_counter() - start

        out = Path(args.predictions) / name
        out.mkdir(parents=True, exist_ok=True)
        for protocol, frame in predictions.items():
            frame.to_csv(out / f"{protocol}.csv", index=False, float_format="%.6f")
        ckpt = Path(args.checkpoints) / name
        shutil.rmtree(ckpt, ignore_errors=True)
        ckpt.mkdir(parents=True)
        logs = Path(args.logs)
        logs.mkdir(parents=True, exist_ok=True)
        # Timings only go to the log: these files are tracked by git and stay identical when a
        # rerun reproduces the same models.
        summary = {"features": columns, "hierarchical": model_cfg.hierarchical, "folds": {}}
        with open(logs / f"{name}.jsonl", "w") as f:
            for fold, fm in models.items():
                torch.save(fm.checkpoint(), ckpt / f"{fold}.pt")
                for record in fm.history:
                    f.write(json.dumps({"fold": fold, **_rounded(record)}) + "\n")
                summary["folds"][fold] = {"best_epoch": fm.best_epoch, "epochs": len(fm.history),
                                          **_rounded(fm.history[fm.best_epoch], skip="epoch")}
        (logs / f"{name}.json").write_text(json.dumps(summary, indent=2) + "\n")
        log.info("%s: %d fold models in %.0f s (%.0f s CPU in fold training); wrote %s", name,
                 len(models), seconds, sum(fm.cpu_seconds for fm in models.values()),
                 sorted(predictions))


def _rounded(record: dict, skip: str | None = None) -> dict:
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in record.items() if k != skip}


if __name__ == "__main__":
    main()
