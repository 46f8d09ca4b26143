"""DVC stage `pretrain_midi`: masked-token pre-training of the MIDI encoders on the token corpus.

``n_encoders`` encoders, seeds ``seed, seed + 1, ...``, each trained for ``train.steps`` steps:
the pre-trained counterpart of the scratch variant's per-seed random inits (finetune_midi seed
*i* starts from encoder *i*). Resumable: each encoder's checkpoints go to
``models/pretrain/checkpoints/seed<s>/last.pt`` (kept by DVC between runs, ``persist: true``);
after a kill, ``dvc repro pretrain_midi`` continues from the last one, and the per-step log
``metrics/pretrain/logs/seed<s>.jsonl`` continues with it (copied to
``metrics/pretrain/curves/seed<s>.csv`` at the end for ``dvc plots``). Writes the encoders
(``models/pretrain/encoders/seed<s>.pt``) and ``metrics/pretrain.json``: corpus counts from the
tokenize stage, training summary, held-out masked-token accuracy and perplexity of each encoder
and their mean. Timings go to the log only (metrics stay identical when a rerun reproduces the
same models).
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
from dataclasses import asdict, replace
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
N_SPECIAL = 2  # PAD and MASK come first in every field


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--tokens", default="data/tokens")
    parser.add_argument("--models", default="models/pretrain")
    parser.add_argument("--logs", default="metrics/pretrain")
    parser.add_argument("--metrics", default="metrics/pretrain.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    p = resolve_profile(load_params("pretrain_midi", args.params), "pretrain_midi")
    max_len = load_params("tokenize", args.params)["max_len"]
    tokens, models, logs = Path(args.tokens), Path(args.models), Path(args.logs)

    tokenizer = load_tokenizer(tokens / "tokenizer.json")
    special = special_ids(tokenizer)
    model_cfg = MidiBertConfig(vocab_sizes=vocab_sizes(tokenizer), max_len=max_len,
                               pad_id=special["pad"], **p["model"])
    cfg = PretrainConfig(**p["train"], tempo_bpm=load_params("tokenize", args.params)
                         ["tokenizer"]["tempo_bpm"], seed=p["seed"],
                         num_threads=p["num_threads"], device=p["device"])
    if cfg.seq_len > max_len:
        raise ValueError(f"pretrain_midi.train.seq_len {cfg.seq_len} > tokenize.max_len {max_len}")
    if p["n_encoders"] < 1:
        raise ValueError(f"pretrain_midi.n_encoders must be at least 1, got {p['n_encoders']}")
    corpus = np.load(tokens / "corpus.npz")
    files = pd.read_csv(tokens / "files.csv")
    train_files = np.flatnonzero((~files["heldout"]) & (files["status"] == "ok"))
    counts = json.loads((tokens / "counts.json").read_text())
    heldout = load_sequences(tokens / "sequences.npz", heldout=True)[:p["eval"]["max_sequences"]]
    log.info("model %s, %d parameters; %d training files; %d encoders x %d steps x %d sequences "
             "x %d tokens", asdict(model_cfg), n_parameters(MidiBert(model_cfg)), len(train_files),
             p["n_encoders"], cfg.steps, cfg.batch_size, cfg.seq_len)
    for folder in (models / "encoders", logs / "curves"):  # no encoder of an earlier n_encoders
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)

    summaries = {}
    for seed in range(p["seed"], p["seed"] + p["n_encoders"]):
        run = replace(cfg, seed=seed)
        sampler = CorpusSampler(corpus["notes"], corpus["offsets"], train_files, tokenizer, run,
                                special["pad"], PreservingConfig.from_params(p["augment"]))
        # the corpus identity is part of the fingerprint: new tokens never resume an old checkpoint
        tag = fingerprint(asdict(model_cfg), asdict(run), p["augment"], counts)
        model, records, info = pretrain(model_cfg, run, sampler, special["mask"], N_SPECIAL,
                                        models / "checkpoints" / f"seed{seed}",
                                        logs / "logs" / f"seed{seed}.jsonl", tag=tag)
        log.info("encoder seed %d: %d steps in this run (resumed from %s) in %.0f s: %.0f tokens/s",
                 seed, info["steps_run"], info["resumed_from"], info["seconds"],
                 info["tokens"] / max(info["seconds"], 1e-9))
        torch.save({"state_dict": model.state_dict(), "model_config": asdict(model_cfg),
                    "steps": run.steps, "seed": seed}, models / "encoders" / f"seed{seed}.pt")
        # dvc plots reads CSV, not JSON lines: the finished run's curve, one row per step
        pd.DataFrame(records).to_csv(logs / "curves" / f"seed{seed}.csv", index=False)
        summaries[seed] = _summary(model, records, heldout, special, run, p["eval"])
        log.info("encoder seed %d: held-out masked-token accuracy %s, perplexity %s", seed,
                 summaries[seed]["heldout"]["accuracy"], summaries[seed]["heldout"]["perplexity"])

    summary = {"corpus": counts, "model": asdict(model_cfg), "parameters": n_parameters(model),
               "train": {"encoders": len(summaries), "steps_per_encoder": cfg.steps,
                         "sequences_seen": len(summaries) * cfg.steps * cfg.batch_size},
               "heldout": {"sequences": len(heldout), **_mean_scores(summaries.values())},
               "encoders": summaries}
    Path(args.metrics).write_text(json.dumps(summary, indent=2) + "\n")


def _summary(model, records: list[dict], heldout: list, special: dict, cfg: PretrainConfig,
             eval_params: dict) -> dict:
    tail = records[-min(50, len(records)):]
    if heldout:
        scores = evaluate_mlm(model, heldout, special["pad"], special["mask"], N_SPECIAL,
                              cfg.mask_rate, eval_params["seed"], eval_params["batch_size"])
    else:  # a tiny corpus whose held-out works are all shorter than tokenize.min_len
        log.warning("no held-out sequences: held-out masked-token metrics left empty")
        scores = {"accuracy": None, "perplexity": None}
    return {"final_loss_mean_last50": round(float(np.mean([r["loss"] for r in tail])), 4),
            "final_masked_acc_mean_last50": round(float(np.mean([r["masked_acc"] for r in tail])), 4),
            "heldout": scores}


def _mean_scores(summaries) -> dict:
    """The encoders' mean held-out accuracy and perplexity (None without held-out sequences)."""
    scores = [s["heldout"] for s in summaries]
    return {name: None if scores[0][name] is None else
            round(float(np.mean([s[name] for s in scores])), 6) for name in ("accuracy", "perplexity")}


if __name__ == "__main__":
    main()
