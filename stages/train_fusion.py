"""DVC stage `train_fusion`: audio+MIDI models on PercePiano, one fold model per fold of every
split in `train_fusion.splits` (lopo: one per performer group).

A model name on the command line (an entry of `train_fusion.models`: fusion operator, loss and
pre-training overrides of `train_fusion.model`) writes metrics/predictions/<name>/<protocol>.csv
and metrics/train_fusion/<name>.json (configuration, best epochs and validation loss per fold).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from pathlib import Path

import pandas as pd

from pianoeval.params import load_params, merge_params, resolve_profile
from pianoeval.train.contrastive import ContrastiveConfig
from pianoeval.train.fusion import FusionConfig, cross_fit_fusion
from pianoeval.train.fusion_data import load_aux, load_fusion_data, load_window_pairs

log = logging.getLogger("train_fusion")


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
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    section = resolve_profile(load_params("train_fusion", args.params), "train_fusion")
    contrastive = ContrastiveConfig.settings(load_params("align_contrastive", args.params))
    exclude_works = load_params("tokenize", args.params)["exclude_works"]
    data, samples = None, None
    for name in args.models:
        if name not in section["models"]:
            raise KeyError(f"no model {name!r} in train_fusion.models (have {sorted(section['models'])})")
        spec = dict(section["models"][name] or {})
        split_names = spec.pop("splits", section["splits"])
        piece_seeds = spec.pop("piece_seeds", section["piece_seeds"])
        cfg = FusionConfig.from_dict(merge_params(section["model"], spec))
        if data is None:
            data = load_fusion_data(args.labels, args.features,
                                    Path(args.embeddings) / section["encoder"], section["source"],
                                    list(cfg.soundfonts))
            splits = pd.read_csv(args.splits, dtype=str).set_index("segment") \
                .loc[data.segments].reset_index()
        if (cfg.uses_aux or cfg.uses_windows) and samples is None:
            samples = pd.read_csv(args.samples, low_memory=False)
        if cfg.uses_aux and data.aux is None:
            data.aux = load_aux(samples, pd.read_csv(args.pairs), pd.read_csv(args.weak),
                                data.midi_columns, data.audio_columns, exclude_works)
            log.info("degraded samples: %d, tier pairs %d", len(data.aux.tier), len(data.aux.pairs))
        if cfg.uses_windows and data.windows is None:
            data.windows = load_window_pairs(
                samples, Path(args.embeddings) / section["encoder"], list(cfg.soundfonts),
                data.midi_columns, data.audio_columns, exclude_works)
            log.info("ASAP window pairs for the heads' pre-training: %d", len(data.windows.items))
        log.info("%s: %s on %s", name, cfg, split_names)
        start = time.perf_counter()
        predictions, summary = cross_fit_fusion(data, splits, cfg, contrastive, split_names,
                                                int(section["n_jobs"]), piece_seeds)
        out = Path(args.predictions) / name
        out.mkdir(parents=True, exist_ok=True)
        for old in out.glob("*.csv"):
            old.unlink()
        for protocol, frame in predictions.items():
            frame.to_csv(out / f"{protocol}.csv", index=False, float_format="%.6f")
        cpu = sum(f.pop("cpu_seconds") for f in summary.values())
        Path(args.logs).mkdir(parents=True, exist_ok=True)
        # timings stay in the log: this file is tracked and identical when a rerun reproduces it
        (Path(args.logs) / f"{name}.json").write_text(json.dumps(
            {"config": dataclasses.asdict(cfg), "splits": list(split_names), "folds": summary},
            indent=2) + "\n")
        log.info("%s: %d fold models in %.0f s wall, %.0f CPU-s (%.1f CPU-s per fold model); "
                 "wrote %s", name, len(summary), time.perf_counter() - start, cpu,
                 cpu / max(1, len(summary)), sorted(predictions))


if __name__ == "__main__":
    main()
