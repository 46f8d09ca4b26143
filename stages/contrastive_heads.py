"""DVC stage `contrastive_heads`: audio<->MIDI projection heads aligned with InfoNCE.

Pairs: the PercePiano performances' MIDI features and audio embeddings (one view per soundfont
of `contrastive_heads.soundfonts`, plus degraded renders), with `windows` also the rendered
ASAP/MAESTRO windows. Recall@1/@5 before and after training on held-out PercePiano works and
held-out groups of ASAP works goes to metrics/contrastive.json; heads trained on every pair to
models/contrastive/heads.pt. Steps: pianoeval.fusion.contrastive_heads.
"""
import argparse
import json
from pathlib import Path

import pandas as pd
import torch

from pianoeval.fusion.contrastive import ContrastiveConfig
from pianoeval.fusion.contrastive_heads import (audio_views, checkpoint, contrastive_report,
                                                retrieval_and_heads, with_windows)
from pianoeval.fusion.data import load_fusion_data, load_window_pairs
from pianoeval.logs import setup_logging
from pianoeval.params import load_params


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
    setup_logging()
    params = load_params("contrastive_heads", args.params)
    embeddings = Path(args.embeddings) / load_params("train_fusion", args.params)["encoder"]
    exclude_works = load_params("tokenize", args.params)["exclude_works"]
    cfg = ContrastiveConfig(**ContrastiveConfig.settings(params))

    data = load_fusion_data(args.labels, args.features, embeddings, params["source"],
                            params["soundfonts"])
    samples = pd.read_csv(args.samples, low_memory=False)
    views, names = audio_views(data, samples, params["soundfonts"], params["degraded_tiers"] or [])
    windows = load_window_pairs(samples, embeddings, params["soundfonts"], data.midi_columns,
                                data.audio_columns, exclude_works) if params["windows"] else None
    views, midi, window_works = with_windows(views, names, data.midi, windows)
    splits = pd.read_csv(args.splits, dtype=str).set_index("segment").loc[data.segments]
    retrieval, heads, history = retrieval_and_heads(views, names, midi, list(splits["work_split"]),
                                                    window_works, cfg)
    Path(args.model).parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint(heads, cfg, data.audio_columns, data.midi_columns), args.model)
    report = contrastive_report(cfg, names, len(data.segments), len(window_works), retrieval,
                                history)
    Path(args.metrics).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
