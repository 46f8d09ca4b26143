"""Masked-token pre-training of the MIDI encoder: masking, on-the-fly augmented batches, the
learning-rate schedule and a resumable, seeded training loop.

* Masking (BERT): each valid token is selected with probability ``rate`` (15%); a selected
  token is replaced by MASK with probability 0.8, by a random token with 0.1, and left as it is
  with 0.1. A compound (CPWord) token is masked whole: every field at once, so the model cannot
  copy the pitch from the same token's other fields. The loss is the cross-entropy on selected
  tokens only, averaged over fields: L = (1/F) sum_f CE_f.
* Batches are drawn from the corpus notes, not from fixed token chunks: a window of
  ``window_notes`` consecutive notes of a random training file (files weighted by note count),
  augmented with ``pianoeval.degrade.preserving.augment`` (transpose, tempo, velocity and timing
  jitter), tokenised, cut to ``seq_len`` tokens. Batch ``step`` uses the generator seeded by
  (seed, step), so a resumed run sees exactly the batches the killed one would have.
* Learning rate: linear warm-up then cosine decay,
  lr(s) = lr_max * s / warmup                                      for s < warmup,
  lr(s) = lr_min + (lr_max - lr_min) * (1 + cos(pi * p)) / 2,  p = (s - warmup) / (steps - warmup).
* ``dropout`` overrides the model's dropout while pre-training only (the saved encoder keeps
  its config, so fine-tuning uses the model's); the CPU default pre-trains without dropout.
* A checkpoint (model, optimiser, step, torch RNG state, a fingerprint of the configuration
  and of the code) is written every ``checkpoint_every`` steps; a run finding one with the same
  fingerprint continues from it, and the JSON-lines log is cut back to that step.
"""
from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import logging
import math
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from pianoeval.data.midi import CONTROL_DTYPE, Performance
from pianoeval.degrade.preserving import PreservingConfig, augment
from pianoeval.distributed import Rank, all_sum, barrier, broadcast
from pianoeval.midibert.model import MidiBert, MidiBertConfig, n_parameters
from pianoeval.provenance import loaded_code_digest
from pianoeval.tokens.tokenizer import encode

log = logging.getLogger(__name__)
IGNORE = -100  # target of unselected tokens (F.cross_entropy's ignore_index)


@dataclass
class PretrainConfig:
    """Pre-training settings: pretrain_midi.train of params.yaml, with the stage's seed,
    threads, device and the tokenizer's tempo; no defaults here (params.yaml is their home)."""
    steps: int
    batch_size: int
    seq_len: int  # tokens per training sequence
    window_notes: int  # notes drawn per sequence before tokenising
    mask_rate: float
    lr: float  # peak learning rate
    min_lr: float  # end of the cosine
    warmup: int  # warm-up steps
    weight_decay: float
    grad_clip: float
    checkpoint_every: int
    augment: bool
    tempo_bpm: float  # reference grid of the tokenizer
    seed: int
    num_threads: int
    device: str
    loader_workers: int  # processes drawing batches ahead of the model (0: inline)
    dropout: float | None  # while pre-training (None: the model config's); the encoder
                           # keeps its config's dropout for fine-tuning


def training_config(model_cfg: MidiBertConfig, cfg: PretrainConfig) -> MidiBertConfig:
    """The model configuration pre-training runs: ``cfg.dropout`` in place of the model's when
    set (the saved encoder keeps ``model_cfg``)."""
    return model_cfg if cfg.dropout is None else replace(model_cfg, dropout=cfg.dropout)


def mask_tokens(ids: torch.Tensor, valid: torch.Tensor, rate: float, mask_id: int,
                vocab_sizes: list[int], n_special: int, gen: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """BERT masking of ``ids`` (B, L, F). Returns (inputs, targets, selected): targets are the
    original ids where selected and IGNORE elsewhere; random replacements are drawn from the
    non-special ids (>= n_special) of each field."""
    selected = (torch.rand(valid.shape, generator=gen) < rate) & valid
    kind = torch.rand(valid.shape, generator=gen)
    to_mask = selected & (kind < 0.8)
    to_random = selected & (kind >= 0.8) & (kind < 0.9)
    inputs = ids.clone()
    inputs[to_mask] = mask_id
    for f, v in enumerate(vocab_sizes):
        rand = torch.randint(n_special, v, valid.shape, generator=gen)
        inputs[..., f] = torch.where(to_random, rand, inputs[..., f])
    targets = torch.where(selected.unsqueeze(-1), ids, torch.full_like(ids, IGNORE))
    return inputs, targets, selected


def mlm_loss(logits: list[torch.Tensor], targets: torch.Tensor,
             n_total: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean over fields of the masked-token cross-entropy, correct predictions per field,
    number of masked tokens). ``n_total``: the masked tokens of the whole batch when ``targets``
    is one process's share of it, so that the processes' losses add up to the batch's."""
    losses, correct = [], []
    n = (targets[..., 0] != IGNORE).sum()
    total = n if n_total is None else n_total
    for f, lg in enumerate(logits):
        t = targets[..., f]
        losses.append(F.cross_entropy(lg.reshape(-1, lg.shape[-1]), t.reshape(-1),
                                      ignore_index=IGNORE, reduction="sum") / total.clamp(min=1))
        correct.append(((lg.argmax(-1) == t) & (t != IGNORE)).sum())
    return torch.stack(losses).mean(), torch.stack(correct), n


def lr_at(step: int, cfg: PretrainConfig) -> float:
    """Warm-up + cosine schedule (formula in the module docstring)."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    p = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.min_lr + (cfg.lr - cfg.min_lr) * 0.5 * (1 + math.cos(math.pi * p))


def pad_batch(seqs: list[np.ndarray], pad_id: int, length: int | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad (n_i, F) id arrays to (B, L, F) with ``pad_id``; valid mask (B, L)."""
    L = length or max(len(s) for s in seqs)
    F_ = seqs[0].shape[1]
    ids = torch.full((len(seqs), L, F_), pad_id, dtype=torch.long)
    valid = torch.zeros(len(seqs), L, dtype=torch.bool)
    for i, s in enumerate(seqs):
        n = min(len(s), L)
        ids[i, :n] = torch.from_numpy(np.asarray(s[:n], dtype=np.int64))
        valid[i, :n] = True
    return ids, valid


class CorpusSampler:
    """Training batches from the corpus notes (``data/tokens/corpus.npz``): ``notes`` is every
    file's notes concatenated, ``offsets`` (n_files + 1) the file boundaries, ``files`` the rows
    to draw from."""

    def __init__(self, notes: np.ndarray, offsets: np.ndarray, files: np.ndarray, tokenizer,
                 cfg: PretrainConfig, pad_id: int,
                 preserving: PreservingConfig = PreservingConfig()):
        self.notes, self.offsets, self.files = notes, np.asarray(offsets), np.asarray(files)
        if len(self.files) == 0:
            raise ValueError("no training files to sample from")
        sizes = np.diff(self.offsets)[self.files].astype(float)
        self.weights = sizes / sizes.sum()
        self.tokenizer, self.cfg, self.pad_id, self.preserving = tokenizer, cfg, pad_id, preserving

    def window(self, rng: np.random.Generator) -> Performance:
        """``window_notes`` consecutive notes of a random file, times shifted to start at 0."""
        f = self.files[rng.choice(len(self.files), p=self.weights)]
        a, b = self.offsets[f], self.offsets[f + 1]
        start = a + int(rng.integers(0, max(1, b - a - self.cfg.window_notes) + 1))
        notes = self.notes[start:min(b, start + self.cfg.window_notes)].copy()
        notes["onset_sec"] -= notes["onset_sec"].min()
        return Performance(notes, np.empty(0, CONTROL_DTYPE))

    def sequence(self, rng: np.random.Generator) -> np.ndarray:
        perf = self.window(rng)
        if self.cfg.augment:
            perf, _ = augment(perf, rng, self.preserving)
            notes = perf.notes.copy()
            notes["onset_sec"] -= notes["onset_sec"].min() if len(notes) else 0.0
            perf = Performance(notes, perf.controls)
        return encode(self.tokenizer, perf, self.cfg.tempo_bpm)[:self.cfg.seq_len]

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch number ``step`` (the same whatever ran before it)."""
        rng = np.random.default_rng([self.cfg.seed, step])
        seqs = [self.sequence(rng) for _ in range(self.cfg.batch_size)]
        return pad_batch(seqs, self.pad_id)


_SAMPLER: CorpusSampler | None = None  # a loader worker's sampler (inherited through fork)


def _init_worker(sampler: CorpusSampler) -> None:
    global _SAMPLER
    _SAMPLER = sampler
    torch.set_num_threads(1)


def _draw(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    return _SAMPLER.batch(step)


def batches(sampler: CorpusSampler, first: int, last: int, workers: int = 0
            ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``sampler.batch(s)`` for s = first .. last - 1, in order. With ``workers`` > 0 they are
    drawn in that many forked processes, at most 2 x workers steps ahead of the consumer: the
    same batches (batch s depends only on (seed, s)), so an accelerator is not left waiting on
    one CPU core's tokenising. A bounded window rather than ``Pool.imap``, which would queue
    every remaining step at once."""
    if workers <= 0:
        yield from (sampler.batch(s) for s in range(first, last))
        return
    steps = iter(range(first, last))
    with multiprocessing.get_context("fork").Pool(workers, _init_worker, (sampler,)) as pool:
        pending = collections.deque(pool.apply_async(_draw, (s,)) for s in
                                    (next(steps) for _ in range(min(2 * workers, last - first))))
        while pending:
            batch = pending.popleft().get()
            step = next(steps, None)
            if step is not None:
                pending.append(pool.apply_async(_draw, (step,)))
            yield batch


def fingerprint(*parts) -> str:
    """Short hash of JSON-serialisable parts and of the code that trains (every loaded pianoeval
    module, torch's and numpy's versions): a checkpoint of another configuration, or one that
    other code wrote, is not resumed."""
    blob = json.dumps([*parts, loaded_code_digest()], sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _read_log(path: Path, upto: int) -> list[dict]:
    if not path.is_file():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if r["step"] < upto]


class MaskedLM(torch.nn.Module):
    """The encoder and its masked-token heads as one module: DistributedDataParallel
    synchronises the gradients of what its ``forward`` runs."""

    def __init__(self, bert: MidiBert):
        super().__init__()
        self.bert = bert

    def forward(self, inputs: torch.Tensor, valid: torch.Tensor) -> list[torch.Tensor]:
        return self.bert.mlm_logits(self.bert(inputs, valid))


def pretrain(model_cfg: MidiBertConfig, cfg: PretrainConfig, sampler: CorpusSampler,
             mask_id: int, n_special: int, ckpt_dir: Path, log_path: Path,
             tag: str = "", on_step: Callable[[dict], None] | None = None,
             rank: Rank = Rank()) -> tuple[MidiBert, list[dict], dict]:
    """Train (or continue training) to ``cfg.steps``; returns (model, log records, info).

    ``info``: steps run in this call, resumed_from (a step or None), seconds, tokens seen in
    this call. ``on_step`` is called after every logged step (tests use it to simulate a kill).

    Under torchrun (``rank.world`` > 1) the model is wrapped in DistributedDataParallel and
    every process draws and masks the whole batch of the step (batch s depends only on
    (seed, s)) and trains on its own rows of it: the loss is normalised by the batch's masked
    tokens, so the gradient DDP averages is the one-process run's gradient of the same global
    batch. Only the main process writes the log and the checkpoints; the others start from the
    main process's checkpoint.
    """
    ckpt_dir, log_path = Path(ckpt_dir), Path(log_path)
    if rank.main:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        log_path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.num_threads)
    torch.use_deterministic_algorithms(True, warn_only=cfg.device.startswith("cuda"))
    model = MidiBert(training_config(model_cfg, cfg)).to(cfg.device)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]  # biases, norms
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    tag = tag or fingerprint(asdict(model_cfg), asdict(cfg))
    last = ckpt_dir / "last.pt"
    step, resumed = 0, None
    state = broadcast(_load_checkpoint(last, tag) if rank.main else None, rank)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        step = resumed = state["step"]
    records = _read_log(log_path, step) if rank.main else []
    if rank.main:
        with open(log_path, "w") as f:  # the log holds exactly the steps before the checkpoint
            f.writelines(json.dumps(r) + "\n" for r in records)
    net = MaskedLM(model)
    if rank.world > 1:
        net = DistributedDataParallel(net, device_ids=[cfg.device] if cfg.device.startswith("cuda")
                                      else None)

    start, tokens, first = time.perf_counter(), 0, step
    gen = torch.Generator()
    drawn = batches(sampler, step, cfg.steps, cfg.loader_workers)
    with (open(log_path, "a") if rank.main else contextlib.nullcontext()) as log_file, \
            tqdm(total=cfg.steps, initial=step, desc="pretrain", mininterval=10,
                 disable=not rank.main) as bar:
        while step < cfg.steps:
            model.train()
            ids, valid = next(drawn)
            gen.manual_seed(cfg.seed * 1_000_003 + step)
            inputs, targets, _ = mask_tokens(ids, valid, cfg.mask_rate, mask_id,
                                             model_cfg.vocab_sizes, n_special, gen)
            # every process draws the whole batch: its counts need no reduction across them
            tokens += int(valid.sum())
            n_total = None if rank.world == 1 else (targets[..., 0] != IGNORE).sum().to(cfg.device)
            if rank.world > 1:  # this process's rows of the step's batch
                rows = rank.rows(len(ids))
                inputs, targets, valid = inputs[rows], targets[rows], valid[rows]
            # on the device before any reduction across processes: NCCL reduces CUDA tensors only
            inputs, targets, valid = (t.to(cfg.device) for t in (inputs, targets, valid))
            for group in opt.param_groups:
                group["lr"] = lr_at(step, cfg)
            logits = net(inputs, valid)
            loss, correct, n = mlm_loss(logits, targets, n_total)
            opt.zero_grad(set_to_none=True)
            # DDP averages the processes' gradients; their losses add up to the batch's
            (loss if rank.world == 1 else loss * rank.world).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            if rank.world > 1:
                loss, correct = all_sum(loss.detach(), rank), all_sum(correct, rank)
                n = n_total
            record = {"step": step, "loss": round(loss.item(), 6),
                      "masked_acc": round(float(correct.sum()) / max(1, int(n)) / len(logits), 6),
                      "lr": float(f"{lr_at(step, cfg):.6g}")}
            if rank.main:
                log_file.write(json.dumps(record) + "\n")
                log_file.flush()
            step += 1
            bar.update(1)
            if rank.main and (step % cfg.checkpoint_every == 0 or step == cfg.steps):
                _save(last, model, opt, step, tag)
            if on_step:
                on_step(record)
    model.eval()
    info = {"steps_run": step - first, "resumed_from": resumed,
            "seconds": time.perf_counter() - start, "tokens": tokens}
    barrier(rank)  # the main process's log is complete
    return model, _read_log(log_path, cfg.steps + 1), info


def _load_checkpoint(path: Path, tag: str) -> dict | None:
    """The checkpoint at ``path`` if it was written by this configuration (else it is removed:
    another configuration starts over)."""
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)  # sent to every process
    if state.get("fingerprint") == tag:
        return state
    path.unlink()
    return None


def _save(path: Path, model, opt, step: int, tag: str) -> None:
    # write then rename: a kill during the save leaves the previous checkpoint intact
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                "torch_rng": torch.get_rng_state(), "fingerprint": tag}, tmp)
    os.replace(tmp, path)


@torch.no_grad()
def evaluate_mlm(model: MidiBert, sequences: list[np.ndarray], pad_id: int, mask_id: int,
                 n_special: int, rate: float = 0.15, seed: int = 0, batch_size: int = 16
                 ) -> dict:
    """Held-out masked-token accuracy (per field and mean over fields) and perplexity
    exp(mean over fields of the masked-token cross-entropy), with a fixed masking draw."""
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    F_ = len(model.cfg.vocab_sizes)
    ce_sum, correct, count = torch.zeros(F_), torch.zeros(F_), 0
    order = np.argsort([len(s) for s in sequences], kind="stable")
    for i in range(0, len(order), batch_size):
        ids, valid = pad_batch([sequences[j] for j in order[i:i + batch_size]], pad_id)
        inputs, targets, selected = mask_tokens(ids, valid, rate, mask_id, model.cfg.vocab_sizes,
                                                n_special, gen)
        logits = model.mlm_logits(model(inputs.to(device), valid.to(device)))
        for f, lg in enumerate(logits):
            t = targets[..., f].to(device)
            ce_sum[f] += F.cross_entropy(lg.reshape(-1, lg.shape[-1]), t.reshape(-1),
                                         ignore_index=IGNORE, reduction="sum").cpu()
            correct[f] += ((lg.argmax(-1) == t) & (t != IGNORE)).sum().cpu()
        count += int(selected.sum())
    if count == 0:
        raise ValueError("no held-out tokens were masked")
    ce = ce_sum / count
    return {"masked_tokens": count, "accuracy": round(float((correct / count).mean()), 6),
            "accuracy_per_field": [round(float(a), 6) for a in correct / count],
            "perplexity": round(float(torch.exp(ce.mean())), 6),
            "cross_entropy_per_field": [round(float(c), 6) for c in ce]}


def load_sequences(path: str | Path, heldout: bool | None = None) -> list[np.ndarray]:
    """Token sequences from ``sequences.npz`` (all, or only held-out / only training ones)."""
    z = np.load(path)
    ids, off, flag = z["ids"], z["offsets"], z["heldout"]
    return [ids[off[i]:off[i + 1]] for i in range(len(off) - 1)
            if heldout is None or bool(flag[i]) == heldout]


N_SPECIAL = 2  # PAD and MASK come first in every field


def pretrain_encoders(model_cfg: MidiBertConfig, cfg: PretrainConfig, n_encoders: int,
                      corpus, train_files: np.ndarray, tokenizer, special: dict,
                      augment_params: dict, counts: dict, heldout: list[np.ndarray],
                      eval_params: dict, models: Path, logs: Path, rank: Rank = Rank()) -> dict:
    """``n_encoders`` encoders, seeds ``cfg.seed, cfg.seed + 1, ...``, each trained by
    :func:`pretrain` (checkpoints in ``models/checkpoints/seed<s>``, per-step log in
    ``logs/logs/seed<s>.jsonl``); the main process writes each encoder to
    ``models/encoders/seed<s>.pt`` and its curve to ``logs/curves/seed<s>.csv``. Returns the
    summary: corpus counts, model, training totals, held-out masked-token scores of each encoder
    and their mean (None in the other processes)."""
    if n_encoders < 1:
        raise ValueError(f"pretrain_midi.n_encoders must be at least 1, got {n_encoders}")
    if cfg.seq_len > model_cfg.max_len:
        raise ValueError(f"pretrain_midi.train.seq_len {cfg.seq_len} > tokenize.max_len "
                         f"{model_cfg.max_len}")
    log.info("model %s, %d parameters; %d training files; %d encoders x %d steps x %d sequences "
             "x %d tokens; %d process(es)", asdict(model_cfg), n_parameters(MidiBert(model_cfg)),
             len(train_files), n_encoders, cfg.steps, cfg.batch_size, cfg.seq_len, rank.world)
    if rank.main:
        for folder in (models / "encoders", logs / "curves"):  # no encoder of an earlier n_encoders
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
    summaries = {}
    for seed in range(cfg.seed, cfg.seed + n_encoders):
        run = replace(cfg, seed=seed)
        sampler = CorpusSampler(corpus["notes"], corpus["offsets"], train_files, tokenizer, run,
                                special["pad"], PreservingConfig.from_params(augment_params))
        # the corpus identity is part of the fingerprint: new tokens never resume an old checkpoint
        tag = fingerprint(asdict(model_cfg), asdict(run), augment_params, counts)
        model, records, info = pretrain(model_cfg, run, sampler, special["mask"], N_SPECIAL,
                                        models / "checkpoints" / f"seed{seed}",
                                        logs / "logs" / f"seed{seed}.jsonl", tag=tag, rank=rank)
        log.info("encoder seed %d: %d steps in this run (resumed from %s) in %.0f s: %.0f tokens/s",
                 seed, info["steps_run"], info["resumed_from"], info["seconds"],
                 info["tokens"] / max(info["seconds"], 1e-9))
        if not rank.main:
            continue
        torch.save({"state_dict": model.state_dict(), "model_config": asdict(model_cfg),
                    "steps": run.steps, "seed": seed}, models / "encoders" / f"seed{seed}.pt")
        # dvc plots reads CSV, not JSON lines: the finished run's curve, one row per step
        pd.DataFrame(records).to_csv(logs / "curves" / f"seed{seed}.csv", index=False)
        summaries[seed] = _encoder_summary(model, records, heldout, special, run, eval_params)
        log.info("encoder seed %d: held-out masked-token accuracy %s, perplexity %s", seed,
                 summaries[seed]["heldout"]["accuracy"], summaries[seed]["heldout"]["perplexity"])
    if not rank.main:
        return None
    return {"corpus": counts, "model": asdict(model_cfg), "parameters": n_parameters(model),
            "train": {"encoders": len(summaries), "steps_per_encoder": cfg.steps,
                      "sequences_seen": len(summaries) * cfg.steps * cfg.batch_size},
            "heldout": {"sequences": len(heldout), **_mean_scores(summaries.values())},
            "encoders": summaries}


def _encoder_summary(model, records: list[dict], heldout: list, special: dict,
                     cfg: PretrainConfig, eval_params: dict) -> dict:
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
