"""DVC stage `pretrain_midi`: masked-token pre-training of the MIDI encoders on the token corpus.

``n_encoders`` encoders (seeds ``seed, seed + 1, ...``; finetune_midi seed *i* starts from encoder
*i*) in ``models/pretrain/encoders/seed<s>.pt``, held-out scores in ``metrics/pretrain.json``,
curves in ``metrics/pretrain/curves``. Resumable after a kill from the persisted checkpoints
(``pianoeval.midibert.pretrain``). Runs as it is or under ``torchrun --nproc-per-node N``
(DistributedDataParallel, same global batch: docs/scale.md).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from pianoeval.config import load_config
from pianoeval.distributed import init_distributed
from pianoeval.logs import setup_logging
from pianoeval.midibert.model import MidiBertConfig
from pianoeval.midibert.pretrain import PretrainConfig, load_sequences, pretrain_encoders
from pianoeval.tokens.tokenizer import load_tokenizer, special_ids, vocab_sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--tokens", default="data/tokens")
    parser.add_argument("--models", default="models/pretrain")
    parser.add_argument("--records", default="metrics/pretrain", help="per-step logs and curves")
    parser.add_argument("--metrics", default="metrics/pretrain.json")
    args = parser.parse_args()
    setup_logging()
    p, tokenize = load_config("pretrain_midi", args.params), load_config("tokenize", args.params)
    tokens = Path(args.tokens)
    rank, device = init_distributed(p.device)

    tokenizer = load_tokenizer(tokens / "tokenizer.json")
    special = special_ids(tokenizer)
    model_cfg = MidiBertConfig(vocab_sizes=vocab_sizes(tokenizer), max_len=tokenize.max_len,
                               pad_id=special["pad"], **p.model.model_dump())
    cfg = PretrainConfig(**p.train.model_dump(), tempo_bpm=tokenize.tokenizer.tempo_bpm,
                         seed=p.seed, num_threads=p.num_threads, device=device)
    files = pd.read_csv(tokens / "files.csv")
    train_files = np.flatnonzero((~files["heldout"]) & (files["status"] == "ok"))
    heldout = load_sequences(tokens / "sequences.npz", heldout=True)[:p.eval.max_sequences]
    summary = pretrain_encoders(
        model_cfg, cfg, p.n_encoders, np.load(tokens / "corpus.npz"), train_files, tokenizer,
        special, p.augment.model_dump(), json.loads((tokens / "counts.json").read_text()),
        heldout, p.eval.model_dump(), Path(args.models), Path(args.records), rank)
    if rank.main:
        Path(args.metrics).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
