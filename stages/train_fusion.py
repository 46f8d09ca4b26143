"""DVC stage `train_fusion`: audio+MIDI models on PercePiano, one fold model per fold of every
split in `train_fusion.splits` (lopo: one per performer group).

A model name on the command line (an entry of `train_fusion.models`: fusion operator, loss and
pre-training overrides of `train_fusion.model`) writes metrics/predictions/<name>/<protocol>.csv
and metrics/train_fusion/<name>.json (configuration, best epochs and validation loss per fold).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from pianoeval.fusion.contrastive import ContrastiveConfig
from pianoeval.fusion.variants import FusionInputs, FusionModels, write_fusion_model
from pianoeval.logs import setup_logging
from pianoeval.params import load_params, resolve_profile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="entries of train_fusion.models")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--labels", default="data/labels.csv")
    parser.add_argument("--features", default="data/features/features.csv")
    parser.add_argument("--embeddings", default="data/embeddings")
    parser.add_argument("--splits", default="data/splits.csv")
    parser.add_argument("--samples", default="data/degrade/samples.csv")
    parser.add_argument("--pairs", default="data/degrade/pairs.csv")
    parser.add_argument("--weak", default="data/weak_labels/labels.csv")
    parser.add_argument("--predictions", default="metrics/predictions")
    parser.add_argument("--logs", default="metrics/train_fusion")
    args = parser.parse_args()
    log = setup_logging("train_fusion")
    section = resolve_profile(load_params("train_fusion", args.params), "train_fusion")
    models = FusionModels(
        section, ContrastiveConfig.settings(load_params("contrastive_heads", args.params)),
        load_params("tokenize", args.params)["exclude_works"],
        FusionInputs(Path(args.labels), Path(args.features),
                     Path(args.embeddings) / section["encoder"], Path(args.splits),
                     Path(args.samples), Path(args.pairs), Path(args.weak)))
    for name in args.models:
        start = time.perf_counter()
        cfg, split_names, predictions, summary = models.fit(name)
        cpu = write_fusion_model(name, cfg, split_names, predictions, summary,
                                 Path(args.predictions), Path(args.logs))
        log.info("%s: %d fold models in %.0f s wall, %.0f CPU-s (%.1f CPU-s per fold model); "
                 "wrote %s", name, len(summary), time.perf_counter() - start, cpu,
                 cpu / max(1, len(summary)), sorted(predictions))


if __name__ == "__main__":
    main()
