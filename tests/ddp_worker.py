"""Runs of test_distributed.py, made once in the test process and once under
``torchrun --nproc-per-node 2`` (gloo): ``pretrain`` trains the tiny test encoder for a few steps
and writes the main process's loss log and final weights; ``finetune`` cross-fits tiny fold
models and writes the main process's predictions."""
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pianoeval.tokens.tokenizer import make_tokenizer, vocab_sizes
from pianoeval.distributed import Rank, init_distributed
from pianoeval.midibert.finetune import cross_fit_midibert
from pianoeval.midibert.pretrain import CorpusSampler, pretrain
from config_factory import finetune_config, midibert_config, pretrain_config
from test_pretrain import TINY, TOK_CFG, VOCAB, _corpus, _labelled_tokens

STEPS, GLOBAL_BATCH = 10, 6


def run_pretrain(out: Path, rank: Rank = Rank()) -> tuple[list[dict], dict]:
    tok = make_tokenizer(TOK_CFG)
    notes, offsets = _corpus()
    cfg = pretrain_config(steps=STEPS, batch_size=GLOBAL_BATCH, seq_len=48, window_notes=30,
                         warmup=3, checkpoint_every=4, lr=3e-3, dropout=0.0)
    sampler = CorpusSampler(notes, offsets, np.arange(4), tok, cfg, pad_id=0)
    model_cfg = midibert_config(vocab_sizes=vocab_sizes(tok), **TINY)
    model, records, _ = pretrain(model_cfg, cfg, sampler, 1, 2, out / "ckpt", out / "log.jsonl",
                                 rank=rank)
    return records, model.state_dict()


def run_finetune(rank: Rank = Rank()) -> dict[str, pd.DataFrame] | None:
    data, labels, splits = _labelled_tokens(24, 4, seed=4)
    result = cross_fit_midibert(data, labels, splits, midibert_config(vocab_sizes=VOCAB, **TINY),
                                finetune_config(batch_size=8, max_epochs=1, n_seeds=2), None,
                                ["piece"], rank=rank)
    return None if result is None else result[0]


if __name__ == "__main__":
    what, out = sys.argv[1], Path(sys.argv[2])
    rank, _ = init_distributed("cpu")
    if what == "pretrain":
        records, state = run_pretrain(out, rank)
        if rank.main:
            (out / "records.json").write_text(json.dumps({"world": rank.world, "records": records}))
            torch.save(state, out / "weights.pt")
    else:
        predictions = run_finetune(rank)
        assert (predictions is None) == (not rank.main)
        if rank.main:
            out.mkdir(parents=True)
            for protocol, frame in predictions.items():
                frame.to_csv(out / f"{protocol}.csv", index=False)
