"""DVC stage `align_contrastive`: audio<->MIDI projection heads aligned with InfoNCE.

Pairs are the PercePiano performances in both modalities: MIDI features (the `features`
stage) and the pooled audio embedding of each render (every soundfont in
`align_contrastive.soundfonts`, plus the degraded renders of issue 5 as extra audio views).
Retrieval recall@1/@5 (audio->MIDI, MIDI->audio) is measured on each held-out work (work_split:
heads trained on the other three works), before and after training; then heads are trained on
every segment and saved to models/contrastive/heads.pt. train_fusion pre-trains its heads per
fold model with this section's settings (on that fold's training rows only).
"""
import argparse
import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pianoeval.params import load_params
from pianoeval.train.contrastive import ContrastiveConfig, heldout_retrieval, standardized, train_heads
from pianoeval.train.fusion_data import degraded_audio_views, load_fusion_data

log = logging.getLogger("align_contrastive")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--labels", default="data/labels.csv")
    parser.add_argument("--features", default="data/features/features.csv")
    parser.add_argument("--embeddings", default="data/embeddings")
    parser.add_argument("--samples", default="data/degrade/samples.csv")
    parser.add_argument("--splits", default="data/splits.csv")
    parser.add_argument("--model", default="models/contrastive/heads.pt")
    parser.add_argument("--metrics", default="metrics/contrastive.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    params = load_params("align_contrastive", args.params)
    encoder = load_params("train_fusion", args.params)["encoder"]
    cfg = ContrastiveConfig(**ContrastiveConfig.settings(params))

    data = load_fusion_data(args.labels, args.features, Path(args.embeddings) / encoder,
                            params["source"], params["soundfonts"])
    names = list(params["soundfonts"])
    views = [data.audio[sf] for sf in names]
    tiers = params["degraded_tiers"] or []
    if tiers:
        samples = pd.read_csv(args.samples, low_memory=False)
        views += degraded_audio_views(samples, data.segments, data.audio_columns, tiers)
        names += [f"degraded_tier{t}" for t in tiers]
    log.info("%d paired segments, audio views %s (rows: %s)", len(data.segments), names,
             [int((~np.isnan(v).any(axis=1)).sum()) for v in views])

    splits = pd.read_csv(args.splits, dtype=str).set_index("segment").loc[data.segments]
    retrieval = heldout_retrieval(views, names, data.midi, splits["work_split"].to_numpy(), cfg)
    for name, result in retrieval["mean"].items():
        log.info("held-out works, %s: before %s after %s chance %s", name,
                 _fmt(result["before"]), _fmt(result["after"]), _fmt(result["chance"]))

    all_rows = np.ones(len(data.segments), bool)
    z_views, z_midi = standardized(views, data.midi, all_rows)
    heads, history = train_heads(z_views, z_midi, cfg)
    Path(args.model).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"heads": heads.state_dict(), "config": dataclasses.asdict(cfg),
                "audio_columns": data.audio_columns, "midi_columns": data.midi_columns}, args.model)
    report = {"config": dataclasses.asdict(cfg), "views": names, "n_segments": len(data.segments),
              "protocol": "work_split: heads trained on three works, recall among the held-out "
                          "work's segments (same passage by other performers included)",
              "heldout_works": retrieval, "final_loss_all_segments": round(history[-1]["loss"], 6)}
    Path(args.metrics).write_text(json.dumps(report, indent=2) + "\n")
    log.info("wrote %s and %s", args.model, args.metrics)


def _fmt(scores: dict) -> str:
    return " ".join(f"{k}={v:.3f}" for k, v in scores.items())


if __name__ == "__main__":
    main()
