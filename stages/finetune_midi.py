"""DVC stage `finetune_midi`: the MIDI encoder fine-tuned on PercePiano, pre-trained and from
scratch (``finetune_midi.models``), one model per fold of every split; predictions in
``metrics/predictions/<model>/``, fold checkpoints in ``models/finetune/<model>/``, records in
``metrics/finetune_midi/`` (``pianoeval.midibert.finetune``). Runs as it is or under
``torchrun --nproc-per-node N``, which shares the fold models out over the processes.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from pianoeval.config import load_config
from pianoeval.distributed import init_distributed
from pianoeval.logs import setup_logging
from pianoeval.midibert.finetune import (FinetuneConfig, cross_fit_midibert, load_encoders,
                                         load_token_data, write_variant)
from pianoeval.midibert.model import MidiBertConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="variants to train (default: all in params)")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--tokens", default="data/tokens/percepiano.npz")
    parser.add_argument("--encoders", default="models/pretrain/encoders",
                        help="folder of pre-trained encoders (seed<s>.pt), or one encoder file")
    parser.add_argument("--labels", default="data/labels.csv")
    parser.add_argument("--splits", default="data/splits.csv")
    parser.add_argument("--predictions", default="metrics/predictions")
    parser.add_argument("--checkpoints", default="models/finetune")
    parser.add_argument("--records", default="metrics/finetune_midi")
    args = parser.parse_args()
    setup_logging()
    p = load_config("finetune_midi", args.params)
    rank, device = init_distributed(p.device)
    encoders = load_encoders(args.encoders)
    model_cfg = MidiBertConfig(**encoders[0]["model_config"])  # the pre-trained architecture
    cfg = FinetuneConfig(**p.train.model_dump(), seed=p.seed, n_seeds=p.n_seeds,
                         num_threads=p.num_threads, device=device)
    tokens = load_token_data(args.tokens, model_cfg.max_len)
    labels, splits = pd.read_csv(args.labels), pd.read_csv(args.splits, dtype=str)

    for name in args.models or list(p.models):
        if name not in p.models:
            raise SystemExit(f"no variant {name!r} in finetune_midi.models (have: {sorted(p.models)})")
        pretrained = p.models[name].pretrained
        result = cross_fit_midibert(
            tokens, labels, splits, model_cfg, cfg,
            [e["state_dict"] for e in encoders] if pretrained else None, p.splits,
            p.n_jobs, p.piece_seeds, rank)
        if rank.main:
            write_variant(name, result, [e.get("seed") for e in encoders] if pretrained else None,
                          Path(args.predictions), Path(args.checkpoints), Path(args.records))


if __name__ == "__main__":
    main()
