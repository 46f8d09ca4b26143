"""DVC stage `pretrain_midi`: masked-token pre-training of the MIDI encoder on the token corpus.

Resumable: checkpoints go to ``models/pretrain/checkpoints/last.pt`` (kept by DVC between runs,
``persist: true``); after a kill, ``dvc repro pretrain_midi`` continues from the last one, and the
per-step log ``metrics/pretrain/log.jsonl`` continues with it (copied to ``log.csv`` at the end
for ``dvc plots``). Writes
the encoder (``models/pretrain/encoder.pt``) and ``metrics/pretrain.json``: corpus counts from
the tokenize stage, training summary, held-out masked-token accuracy and perplexity. Timings
go to the log only (metrics stay identical when a rerun reproduces the same model).
"""
from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pianoeval.degrade.preserving import PreservingConfig
from pianoeval.models.midibert import MidiBert, MidiBertConfig, n_parameters
from pianoeval.params import load_params, resolve_profile
from pianoeval.tokens.tokenizer import load_tokenizer, special_ids, vocab_sizes
from pianoeval.train.pretrain import (CorpusSampler, PretrainConfig, evaluate_mlm, fingerprint,
                                      load_sequences, pretrain)

log = logging.getLogger("pretrain_midi")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--tokens", default="data/tokens")
    parser.add_argument("--models", default="models/pretrain")
    parser.add_argument("--log", default="metrics/pretrain/log.jsonl")
    parser.add_argument("--metrics", default="metrics/pretrain.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    p = resolve_profile(load_params("pretrain_midi", args.params), "pretrain_midi")
    max_len = load_params("tokenize", args.params)["max_len"]
    tokens = Path(args.tokens)

    tokenizer = load_tokenizer(tokens / "tokenizer.json")
    special = special_ids(tokenizer)
    model_cfg = MidiBertConfig(vocab_sizes=vocab_sizes(tokenizer), max_len=max_len,
                               pad_id=special["pad"], **p["model"])
    cfg = PretrainConfig(**p["train"], tempo_bpm=load_params("tokenize", args.params)
                         ["tokenizer"]["tempo_bpm"], seed=p["seed"],
                         num_threads=p["num_threads"], device=p["device"])
    if cfg.seq_len > max_len:
        raise ValueError(f"pretrain_midi.train.seq_len {cfg.seq_len} > tokenize.max_len {max_len}")
    corpus = np.load(tokens / "corpus.npz")
    files = pd.read_csv(tokens / "files.csv")
    train_files = np.flatnonzero((~files["heldout"]) & (files["status"] == "ok"))
    sampler = CorpusSampler(corpus["notes"], corpus["offsets"], train_files, tokenizer, cfg,
                            special["pad"], PreservingConfig.from_params(p["augment"]))
    n_special = 2  # PAD and MASK come first in every field
    log.info("model %s, %d parameters; %d training files; %d steps x %d sequences x %d tokens",
             asdict(model_cfg), n_parameters(MidiBert(model_cfg)),
             len(train_files), cfg.steps, cfg.batch_size, cfg.seq_len)
    counts = json.loads((tokens / "counts.json").read_text())
    # the corpus identity is part of the fingerprint: new tokens never resume an old checkpoint
    tag_parts = [asdict(model_cfg), asdict(cfg), p["augment"], counts]
    model, records, info = pretrain(model_cfg, cfg, sampler, special["mask"], n_special,
                                    Path(args.models) / "checkpoints", Path(args.log),
                                    tag=fingerprint(*tag_parts))
    log.info("%d steps in this run (resumed from %s) in %.0f s: %.0f tokens/s", info["steps_run"],
             info["resumed_from"], info["seconds"], info["tokens"] / max(info["seconds"], 1e-9))

    heldout = load_sequences(tokens / "sequences.npz", heldout=True)[:p["eval"]["max_sequences"]]
    if heldout:
        scores = evaluate_mlm(model, heldout, special["pad"], special["mask"], n_special,
                              cfg.mask_rate, p["eval"]["seed"], p["eval"]["batch_size"])
    else:  # a tiny corpus whose held-out works are all shorter than tokenize.min_len
        log.warning("no held-out sequences: held-out masked-token metrics left empty")
        scores = {"accuracy": None, "perplexity": None}
    torch.save({"state_dict": model.state_dict(), "model_config": asdict(model_cfg),
                "steps": cfg.steps}, Path(args.models) / "encoder.pt")
    # dvc plots reads CSV, not JSON lines: the finished run's curve, one row per step
    pd.DataFrame(records).to_csv(Path(args.log).with_suffix(".csv"), index=False)
    tail = records[-min(50, len(records)):]
    summary = {"corpus": counts, "model": asdict(model_cfg), "parameters": n_parameters(model),
               "train": {"steps": cfg.steps, "sequences_seen": cfg.steps * cfg.batch_size,
                         "final_loss_mean_last50": round(float(np.mean([r["loss"] for r in tail])), 4),
                         "final_masked_acc_mean_last50": round(float(np.mean([r["masked_acc"] for r in tail])), 4)},
               "heldout": {"sequences": len(heldout), **scores}}
    Path(args.metrics).write_text(json.dumps(summary, indent=2) + "\n")
    log.info("held-out masked-token accuracy %s, perplexity %s", scores["accuracy"],
             scores["perplexity"])


if __name__ == "__main__":
    main()
