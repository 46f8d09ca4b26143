"""The work of the ``train_fusion`` stage: every named model of the section fitted by
:func:`pianoeval.fusion.train.cross_fit_fusion` on the inputs it needs, read once on first use
(the segments' features and embeddings; the degraded samples, tier pairs and weak labels for the
auxiliary losses; the ASAP window pairs for the heads' pre-training), and its outputs written.
"""
from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pianoeval.evaluate.inputs import write_predictions
from pianoeval.fusion.data import load_aux, load_fusion_data, load_window_pairs
from pianoeval.fusion.train import FusionConfig, cross_fit_fusion
from pianoeval.params import merge_params

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FusionInputs:
    labels: Path
    features: Path
    embeddings: Path   # the encoder's folder (data/embeddings/<encoder>)
    splits: Path
    samples: Path      # degrade stage
    pairs: Path
    weak: Path         # weak_labels stage


class FusionModels:
    """The models of one ``train_fusion`` section, sharing the data they read."""

    def __init__(self, section: dict, contrastive: dict, exclude_works: list[str],
                 inputs: FusionInputs):
        self.section, self.contrastive = section, contrastive
        self.exclude_works, self.inputs = exclude_works, inputs
        self.data = self.splits = self.samples = None

    def spec(self, name: str) -> tuple[FusionConfig, list[str], int | None]:
        """Model ``name``: its configuration (its overrides merged over ``model``), the splits
        it runs and the piece-split seeds."""
        models = self.section["models"]
        if name not in models:
            raise KeyError(f"no model {name!r} in train_fusion.models (have {sorted(models)})")
        spec = dict(models[name] or {})
        split_names = spec.pop("splits", self.section["splits"])
        piece_seeds = spec.pop("piece_seeds", self.section["piece_seeds"])
        return FusionConfig.from_dict(merge_params(self.section["model"], spec)), split_names, \
            piece_seeds

    def fit(self, name: str):
        """(configuration, splits, predictions per protocol, summary per fold model)."""
        cfg, split_names, piece_seeds = self.spec(name)
        self._read(cfg)
        log.info("%s: %s on %s", name, cfg, split_names)
        predictions, summary = cross_fit_fusion(self.data, self.splits, cfg, self.contrastive,
                                                split_names, int(self.section["n_jobs"]),
                                                piece_seeds, self.section["heads_cache"])
        return cfg, split_names, predictions, summary

    def _read(self, cfg: FusionConfig) -> None:
        inputs = self.inputs
        if self.data is None:
            self.data = load_fusion_data(inputs.labels, inputs.features, inputs.embeddings,
                                         self.section["source"], list(cfg.soundfonts))
            self.splits = pd.read_csv(inputs.splits, dtype=str).set_index("segment") \
                .loc[self.data.segments].reset_index()
        if (cfg.uses_aux or cfg.uses_windows) and self.samples is None:
            self.samples = pd.read_csv(inputs.samples, low_memory=False)
        if cfg.uses_aux and self.data.aux is None:
            self.data.aux = load_aux(self.samples, pd.read_csv(inputs.pairs),
                                     pd.read_csv(inputs.weak), self.data.midi_columns,
                                     self.data.audio_columns, self.exclude_works)
            log.info("degraded samples: %d, tier pairs %d", len(self.data.aux.tier),
                     len(self.data.aux.pairs))
        if cfg.uses_windows and self.data.windows is None:
            self.data.windows = load_window_pairs(
                self.samples, inputs.embeddings, list(cfg.soundfonts), self.data.midi_columns,
                self.data.audio_columns, self.exclude_works)
            log.info("ASAP window pairs for the heads' pre-training: %d",
                     len(self.data.windows.items))


def write_fusion_model(name: str, cfg: FusionConfig, split_names: list[str],
                       predictions: dict[str, pd.DataFrame], summary: dict,
                       predictions_dir: Path, logs_dir: Path) -> float:
    """``predictions_dir/<name>/<protocol>.csv`` (earlier protocols' files removed) and
    ``logs_dir/<name>.json`` (configuration, splits, best epochs and validation loss per fold
    model). Timings stay out of the file, which is tracked and identical when a rerun
    reproduces it; returns the fold models' CPU seconds for the log."""
    write_predictions(predictions_dir / name, predictions)
    cpu = sum(f.pop("cpu_seconds") for f in summary.values())
    logs_dir.mkdir(parents=True, exist_ok=True)
    (logs_dir / f"{name}.json").write_text(json.dumps(
        {"config": dataclasses.asdict(cfg), "splits": list(split_names), "folds": summary},
        indent=2) + "\n")
    return cpu
