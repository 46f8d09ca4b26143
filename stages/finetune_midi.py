"""DVC stage `finetune_midi`: the MIDI encoder fine-tuned on PercePiano, pre-trained and from
scratch, one model per fold of every split.

For every variant in ``finetune_midi.models`` (default ``midibert_pretrained``: seed *i*'s fold
models start from the *i*-th encoder in ``models/pretrain/encoders/``, cycling when there are
fewer encoders than seeds; ``midibert_scratch``: the same architecture, random init):
out-of-fold and test-set predictions (the mean over the ``n_seeds`` fold models of each fold) in
``metrics/predictions/<model>/<protocol>.csv``, each seed's own predictions in
``models/finetune/<model>/predictions_seed<s>/<protocol>.csv``, fold checkpoints in
``models/finetune/<model>/<split>_<k>[_seed<s>].pt``, per-epoch losses in
``metrics/finetune_midi/<model>.jsonl`` and a summary in ``metrics/finetune_midi/<model>.json``.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path

import pandas as pd
import torch

from pianoeval.models.midibert import MidiBertConfig
from pianoeval.params import load_params, resolve_profile
from pianoeval.train.finetune import (FinetuneConfig, cross_fit_midibert, load_encoders,
                                      load_token_data)

log = logging.getLogger("finetune_midi")


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
    parser.add_argument("--logs", default="metrics/finetune_midi")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    p = resolve_profile(load_params("finetune_midi", args.params), "finetune_midi")
    encoders = load_encoders(args.encoders)
    model_cfg = MidiBertConfig(**encoders[0]["model_config"])  # the architecture is the pre-trained one
    cfg = FinetuneConfig(**p["train"], seed=p["seed"], n_seeds=p["n_seeds"],
                         num_threads=p["num_threads"], device=p["device"])
    tokens = load_token_data(args.tokens, model_cfg.max_len)
    labels = pd.read_csv(args.labels)
    splits = pd.read_csv(args.splits, dtype=str)

    for name in args.models or list(p["models"]):
        if name not in p["models"]:
            raise KeyError(f"no variant {name!r} in finetune_midi.models (have: {sorted(p['models'])})")
        pretrained = bool(p["models"][name]["pretrained"])
        start = time.perf_counter()
        predictions, per_seed, models = cross_fit_midibert(
            tokens, labels, splits, model_cfg, cfg,
            [e["state_dict"] for e in encoders] if pretrained else None, p["splits"],
            p["n_jobs"], p["piece_seeds"])
        log.info("%s: %d fold models in %.0f s", name, sum(map(len, models.values())),
                 time.perf_counter() - start)

        _write_predictions(Path(args.predictions) / name, predictions)
        ckpt = Path(args.checkpoints) / name
        shutil.rmtree(ckpt, ignore_errors=True)
        ckpt.mkdir(parents=True)
        for seed, frames in per_seed.items():  # each seed's single models, for compare_midibert
            _write_predictions(ckpt / f"predictions_seed{seed}", frames)
        logs = Path(args.logs)
        logs.mkdir(parents=True, exist_ok=True)
        summary = {"pretrained": pretrained, "folds": {},
                   "encoder_seeds": [e.get("seed") for e in encoders] if pretrained else None}
        with open(logs / f"{name}.jsonl", "w") as f:
            for fold, fms in models.items():
                for seed, fm in zip(per_seed, fms):  # one seed keeps the plain fold name
                    key = fold if len(fms) == 1 else f"{fold}_seed{seed}"
                    torch.save(fm.checkpoint(), ckpt / f"{key}.pt")
                    for record in fm.history:
                        f.write(json.dumps({"fold": key, **_rounded(record)}) + "\n")
                    summary["folds"][key] = {"best_epoch": fm.best_epoch, "epochs": len(fm.history),
                                             **_rounded(fm.history[fm.best_epoch], skip="epoch")}
        (logs / f"{name}.json").write_text(json.dumps(summary, indent=2) + "\n")


def _write_predictions(folder: Path, frames: dict[str, pd.DataFrame]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for protocol, frame in frames.items():
        frame.to_csv(folder / f"{protocol}.csv", index=False, float_format="%.6f")


def _rounded(record: dict, skip: str | None = None) -> dict:
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in record.items() if k != skip}


if __name__ == "__main__":
    main()
