"""MIDI-encoder throughput on this machine -> benchmarks/pretrain.md.

Tokenisation speed (files/s and notes/s: read_midi + MidiTok encode, one process), pre-training
speed (tokens/s of optimiser steps with on-the-fly augmented batches, and of the model step
alone) and fine-tuning speed (segments/s) for the params in params.yaml (CPU default, or any
profile: ``--profile gpu --device cuda`` on a GPU machine). Needs the tokenize stage's output.

    .venv/bin/python benchmarks/pretrain_bench.py [--steps 20] [--out benchmarks/pretrain.md]
"""
import argparse
import datetime
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pianoeval.data.midi import read_midi
from pianoeval.degrade.preserving import PreservingConfig
from pianoeval.midibert.finetune import load_token_data
from pianoeval.midibert.head import MidiBertRegressor
from pianoeval.midibert.model import MidiBert, MidiBertConfig, n_parameters
from pianoeval.midibert.pretrain import (CorpusSampler, PretrainConfig, mask_tokens, mlm_loss,
                                         pad_batch, training_config)
from pianoeval.params import load_params, resolve_profile
from pianoeval.tokens.tokenizer import encode, load_tokenizer, special_ids, vocab_sizes

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from run import machine as hardware  # noqa: E402  (benchmarks/run.py: the machine description)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--files", type=int, default=60, help="corpus files to tokenise")
    ap.add_argument("--profile", default=None)
    ap.add_argument("--device", default=None)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "pretrain.md"))
    args = ap.parse_args()
    section = load_params("pretrain_midi", ROOT / "params.yaml")
    if args.profile:
        section = {**section, "profile": args.profile}
    p = resolve_profile(section, "pretrain_midi")
    device = args.device or p["device"]
    tok_params = load_params("tokenize", ROOT / "params.yaml")
    tokens = ROOT / "data" / "tokens"
    tokenizer = load_tokenizer(tokens / "tokenizer.json")
    tempo = tok_params["tokenizer"]["tempo_bpm"]
    files = pd.read_csv(tokens / "files.csv")
    torch.set_num_threads(p["num_threads"])

    # tokenisation: evenly spaced corpus files, read + encode
    pick = files.iloc[np.linspace(0, len(files) - 1, args.files).astype(int)]
    start, n_notes, n_tok = time.perf_counter(), 0, 0
    for src, f in zip(pick["source"], pick["file"]):
        perf = read_midi(ROOT / "data" / "raw" / src / f)
        n_notes += len(perf.notes)
        n_tok += len(encode(tokenizer, perf, tempo))
    t_tok = time.perf_counter() - start

    # pre-training: full steps (sampling + augment + tokenise + forward/backward/AdamW)
    special = special_ids(tokenizer)
    cfg = PretrainConfig(**p["train"], tempo_bpm=tempo, seed=p["seed"],
                         num_threads=p["num_threads"], device=device)
    model_cfg = MidiBertConfig(vocab_sizes=vocab_sizes(tokenizer), max_len=tok_params["max_len"],
                               pad_id=special["pad"], **p["model"])
    corpus = np.load(tokens / "corpus.npz")
    sampler = CorpusSampler(corpus["notes"], corpus["offsets"],
                            np.flatnonzero(~files["heldout"]), tokenizer, cfg, special["pad"],
                            PreservingConfig.from_params(p["augment"]))
    model = MidiBert(training_config(model_cfg, cfg)).to(device)
    t_batch, t_model, n_tokens = _time_steps(model, sampler, args.steps, special["mask"], device)
    # the model's own dropout (fine-tuning's) too: what pre-training without dropout saves
    _, t_model_ft, n_ft = _time_steps(MidiBert(model_cfg).to(device), sampler, args.steps,
                                      special["mask"], device)

    # fine-tuning: training steps of the regressor on PercePiano segments
    fp = load_params("finetune_midi", ROOT / "params.yaml")
    data = load_token_data(tokens / "percepiano.npz", model_cfg.max_len)
    reg = MidiBertRegressor(model_cfg).to(device)
    opt = torch.optim.AdamW(reg.parameters(), lr=1e-4)
    bs = fp["train"]["batch_size"]
    order = np.random.default_rng(0).permutation(len(data.seqs))[: bs * 10]
    t0, n_ft_tok = time.perf_counter(), 0
    for i in range(0, len(order), bs):
        ids, valid = pad_batch([data.seqs[j] for j in order[i:i + bs]], special["pad"])
        loss = reg(ids.to(device), valid.to(device)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        n_ft_tok += int(valid.sum())
    t_ft = time.perf_counter() - t0

    total = t_batch + t_model
    lines = [
        "# MIDI encoder throughput", "",
        f"Measured {datetime.date.today()} by `benchmarks/pretrain_bench.py` on {hardware()}, "
        f"device `{device}`, {p['num_threads']} torch thread(s). Drawing and the model step are "
        "timed one after the other here; the stage overlaps them with "
        f"`train.loader_workers` ({cfg.loader_workers}) loader processes, so its own rate (in its "
        "log) comes close to the model step's.", "",
        f"Model: d_model {model_cfg.d_model}, {model_cfg.n_heads} heads, {model_cfg.n_layers} "
        f"layers, d_ff {model_cfg.d_ff}, {n_parameters(model):,} parameters, dropout "
        f"{model.cfg.dropout} while pre-training; batches of "
        f"{cfg.batch_size} x {cfg.seq_len} tokens ({tok_params['tokenizer']['kind']}).", "",
        "| what | rate |", "|---|---|",
        f"| tokenisation (read_midi + MidiTok encode, {len(pick)} corpus files, 1 process) | "
        f"{len(pick) / t_tok:.1f} files/s, {n_notes / t_tok:,.0f} notes/s, {n_tok / t_tok:,.0f} tokens/s |",
        f"| pre-training, whole step ({args.steps} steps: draw, augment, tokenise, mask, forward, backward, AdamW) | "
        f"{n_tokens / total:,.0f} tokens/s ({total / args.steps:.2f} s/step) |",
        f"| pre-training, model step only | {n_tokens / t_model:,.0f} tokens/s |",
        f"| the same model step with dropout {model_cfg.dropout} (the model's, kept for fine-tuning) | "
        f"{n_ft / t_model_ft:,.0f} tokens/s |",
        f"| on-the-fly batches (draw + augment + tokenise + mask) | {t_batch / total:.0%} of the step time |",
        f"| fine-tuning (regressor, batches of {bs} PercePiano segments) | "
        f"{len(order) / t_ft:.1f} segments/s, {n_ft_tok / t_ft:,.0f} tokens/s |", "",
    ]
    out = Path(args.out)
    # the sections after this table (GPU runs, the position ablation) are written by hand or by
    # other drivers: keep them
    old = out.read_text() if out.is_file() else ""
    kept = old[old.index("\n## "):] if "\n## " in old else ""
    out.write_text("\n".join(lines) + kept)
    print("\n".join(lines))


def _time_steps(model, sampler, steps: int, mask_id: int, device: str) -> tuple[float, float, int]:
    """Seconds drawing batches, seconds in the model step (forward, backward, AdamW) and tokens,
    over ``steps`` steps after two untimed warm-up steps."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    model.train()
    t_batch = t_model = 0.0
    n_tokens = 0
    for step in range(steps + 2):
        t0 = time.perf_counter()
        ids, valid = sampler.batch(step)
        inputs, targets, _ = mask_tokens(ids, valid, 0.15, mask_id, model.cfg.vocab_sizes, 2, gen)
        t1 = time.perf_counter()
        loss, _, _ = mlm_loss(model.mlm_logits(model(inputs.to(device), valid.to(device))),
                              targets.to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        if step >= 2:
            t_batch += t1 - t0
            t_model += t2 - t1
            n_tokens += int(valid.sum())
    return t_batch, t_model, n_tokens


if __name__ == "__main__":
    main()
