"""DVC stage `align_contrastive`: audio<->MIDI projection heads aligned with InfoNCE.

Pairs are the PercePiano performances in both modalities: MIDI features (the `features`
stage) and the pooled audio embedding of each render (every soundfont in
`align_contrastive.soundfonts`, plus the degraded renders of issue 5 as extra audio views);
with `windows`, also the rendered ASAP/MAESTRO windows (MIDI features of the degrade stage's
clean windows; windows of PercePiano's works left out). Retrieval recall@1/@5 (audio->MIDI,
MIDI->audio) is measured before and after training on held-out works: each PercePiano work
(work_split, heads trained on the other three and every window) and each of 4 seeded groups of
ASAP works (heads trained on the other windows and every segment). Then heads are trained on
every pair and saved to models/contrastive/heads.pt. train_fusion pre-trains its heads per
fold model with this section's settings (on that fold's training rows and the windows).
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
from pianoeval.train.contrastive import (ContrastiveConfig, heldout_retrieval, standardized,
                                         train_heads, work_groups)
from pianoeval.train.fusion_data import degraded_audio_views, load_fusion_data, load_window_pairs

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
    samples = pd.read_csv(args.samples, low_memory=False)
    if tiers:
        views += degraded_audio_views(samples, data.segments, data.audio_columns, tiers)
        names += [f"degraded_tier{t}" for t in tiers]
    midi, n_segments, window_works = data.midi, len(data.segments), np.array([], str)
    if params["windows"]:
        win = load_window_pairs(samples, Path(args.embeddings) / encoder, params["soundfonts"],
                                data.midi_columns, data.audio_columns,
                                load_params("tokenize", args.params)["exclude_works"])
        absent = np.full((len(win.items), len(data.audio_columns)), np.nan)
        views = [np.concatenate([v, win.audio.get(name, absent)]) for v, name in zip(views, names)]
        midi, window_works = np.concatenate([data.midi, win.midi]), win.works
    log.info("%d paired segments + %d ASAP windows, audio views %s (rows: %s)", n_segments,
             len(window_works), names, [int((~np.isnan(v).any(axis=1)).sum()) for v in views])

    splits = pd.read_csv(args.splits, dtype=str).set_index("segment").loc[data.segments]
    no_windows, no_segments = [""] * len(window_works), [""] * n_segments
    retrieval = {"percepiano_works": heldout_retrieval(
        views, names, midi, [*splits["work_split"], *no_windows], cfg)}
    if len(window_works):
        retrieval["asap_works"] = heldout_retrieval(
            views, names, midi, [*no_segments, *work_groups(window_works, 4, cfg.seed)], cfg)
    for held, result in retrieval.items():
        for name, scores in result["mean"].items():
            log.info("held-out %s, %s: before %s after %s chance %s", held, name,
                     _fmt(scores["before"]), _fmt(scores["after"]), _fmt(scores["chance"]))

    z_views, z_midi = standardized(views, midi, np.ones(len(midi), bool))
    heads, history = train_heads(z_views, z_midi, cfg)
    Path(args.model).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"heads": heads.state_dict(), "config": dataclasses.asdict(cfg),
                "audio_columns": data.audio_columns, "midi_columns": data.midi_columns}, args.model)
    report = {"config": dataclasses.asdict(cfg), "views": names, "n_segments": n_segments,
              "n_windows": len(window_works),
              "protocol": "heldout_works: each PercePiano work (work_split) held out, heads "
                          "trained on the other works and every ASAP window; recall among the "
                          "held-out work's segments (same passage by other performers included). "
                          "heldout_asap_works: 4 seeded groups of ASAP works held out in turn, "
                          "recall among the held-out windows",
              "heldout_works": retrieval["percepiano_works"],
              "heldout_asap_works": retrieval.get("asap_works"),
              "final_loss_all_pairs": round(history[-1]["loss"], 6)}
    Path(args.metrics).write_text(json.dumps(report, indent=2) + "\n")
    log.info("wrote %s and %s", args.model, args.metrics)


def _fmt(scores: dict) -> str:
    return " ".join(f"{k}={v:.3f}" for k, v in scores.items())


if __name__ == "__main__":
    main()
