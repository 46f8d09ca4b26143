"""The `contrastive_heads` stage's steps: the paired rows (audio views x MIDI), the held-out
retrieval protocols, the heads trained on every pair, and the checkpoint and report written.

Kept apart from :mod:`pianoeval.fusion.contrastive`, which train_fusion imports too: changing how
this stage assembles or reports its pairs must not make the fusion models stale.
"""
from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pandas as pd
import torch

from pianoeval.fusion.contrastive import (ContrastiveConfig, fold_means, heldout_retrieval,
                                          standardized, train_heads, work_groups)
from pianoeval.fusion.data import FusionData, WindowPairs, degraded_audio_views
from pianoeval.progress import Progress

log = logging.getLogger(__name__)

ASAP_GROUPS = 4  # seeded groups of ASAP works held out in turn
PROTOCOL = ("heldout_works: each PercePiano work (work_split) held out, heads trained on the "
            "other works and every ASAP window; recall among the held-out work's segments (same "
            "passage by other performers included). heldout_asap_works: 4 seeded groups of ASAP "
            "works held out in turn, recall among the held-out windows")


def audio_views(data: FusionData, samples: pd.DataFrame, soundfonts: list[str],
                degraded_tiers: list[int]) -> tuple[list[np.ndarray], list[str]]:
    """The segments' audio views and their names: one per soundfont's render, then one per
    degraded tier (``degraded_tier<t>``, NaN rows for segments without such a render)."""
    views = [data.audio[sf] for sf in soundfonts]
    names = list(soundfonts)
    if degraded_tiers:
        views += degraded_audio_views(samples, data.segments, data.audio_columns, degraded_tiers)
        names += [f"degraded_tier{t}" for t in degraded_tiers]
    return views, names


def with_windows(views: list[np.ndarray], names: list[str], midi: np.ndarray,
                 windows: WindowPairs | None) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Views, MIDI and window works with the ASAP windows' rows appended after the segments'.
    A view the windows were not rendered in (a degraded tier) gets NaN rows: absent, not
    zero. Without windows the inputs come back unchanged with no window works."""
    n_segments, works = len(midi), np.array([], str)
    if windows is not None:
        absent = np.full((len(windows.items), views[0].shape[1]), np.nan)
        views = [np.concatenate([v, windows.audio.get(name, absent)])
                 for v, name in zip(views, names)]
        midi, works = np.concatenate([midi, windows.midi]), windows.works
    log.info("%d paired segments + %d ASAP windows, audio views %s (rows: %s)", n_segments,
             len(works), names, [int((~np.isnan(v).any(axis=1)).sum()) for v in views])
    return views, midi, works


def protocol_folds(work_split: list[str], window_works: np.ndarray, cfg: ContrastiveConfig
                   ) -> dict[str, list[str]]:
    """Each row's held-out fold under each protocol ("" never held out). Rows are the segments
    (``work_split``, one each) then the windows. ``percepiano_works``: each PercePiano work
    held out, the windows only ever train. ``asap_works`` (only with windows): ``ASAP_GROUPS``
    seeded groups of window works held out, the segments only ever train."""
    no_windows, no_segments = [""] * len(window_works), [""] * len(work_split)
    folds = {"percepiano_works": [*work_split, *no_windows]}
    if len(window_works):
        folds["asap_works"] = [*no_segments, *work_groups(window_works, ASAP_GROUPS, cfg.seed)]
    return folds


def heldout_by_fold(views: list[np.ndarray], names: list[str], midi: np.ndarray,
                    folds: list[str], cfg: ContrastiveConfig, progress: Progress | None = None
                    ) -> dict:
    """:func:`heldout_retrieval` called once per held-out fold (the other folds' rows marked
    "" train all the same), so that ``progress`` counts one step per fold; the same folds and
    means as one call over all folds."""
    folds = np.asarray(folds, dtype=str)
    per_fold = {}
    for fold in sorted(set(folds) - {""}):
        one = np.where(folds == fold, folds, "")
        per_fold.update(heldout_retrieval(views, names, midi, one, cfg)["folds"])
        if progress is not None:
            progress.update()
    return {"folds": per_fold, "mean": fold_means(per_fold, names)}


def retrieval_protocols(views: list[np.ndarray], names: list[str], midi: np.ndarray,
                        work_split: list[str], window_works: np.ndarray,
                        cfg: ContrastiveConfig, progress: Progress | None = None) -> dict:
    """Held-out retrieval (:func:`heldout_by_fold`) under both protocols of
    :func:`protocol_folds`; ``progress`` counts the held-out folds."""
    retrieval = {held: heldout_by_fold(views, names, midi, folds, cfg, progress)
                 for held, folds in protocol_folds(work_split, window_works, cfg).items()}
    for held, result in retrieval.items():
        for name, scores in result["mean"].items():
            log.info("held-out %s, %s: before %s after %s chance %s", held, name,
                     format_scores(scores["before"]), format_scores(scores["after"]),
                     format_scores(scores["chance"]))
    return retrieval


def fit_all_pairs(views: list[np.ndarray], midi: np.ndarray, cfg: ContrastiveConfig
                  ) -> tuple[torch.nn.ModuleDict, list[dict]]:
    """Heads trained on every pair, standardised with every row's statistics."""
    z_views, z_midi = standardized(views, midi, np.ones(len(midi), bool))
    return train_heads(z_views, z_midi, cfg)


def retrieval_and_heads(views: list[np.ndarray], names: list[str], midi: np.ndarray,
                        work_split: list[str], window_works: np.ndarray, cfg: ContrastiveConfig
                        ) -> tuple[dict, torch.nn.ModuleDict, list[dict]]:
    """:func:`retrieval_protocols`, then :func:`fit_all_pairs`, with progress counting every
    training of heads (each held-out fold of each protocol, then the all-pairs heads)."""
    n = sum(len(set(f) - {""}) for f in protocol_folds(work_split, window_works, cfg).values())
    with Progress("contrastive_heads", n + 1, "head trainings") as progress:
        retrieval = retrieval_protocols(views, names, midi, work_split, window_works, cfg,
                                        progress)
        heads, history = fit_all_pairs(views, midi, cfg)
        progress.update()
    return retrieval, heads, history


def checkpoint(heads: torch.nn.ModuleDict, cfg: ContrastiveConfig, audio_columns: list[str],
               midi_columns: list[str]) -> dict:
    """What models/contrastive/heads.pt holds: the weights, their settings and the input
    columns (so a reader can check it feeds the same features)."""
    return {"heads": heads.state_dict(), "config": dataclasses.asdict(cfg),
            "audio_columns": audio_columns, "midi_columns": midi_columns}


def contrastive_report(cfg: ContrastiveConfig, names: list[str], n_segments: int, n_windows: int,
                       retrieval: dict, history: list[dict]) -> dict:
    """metrics/contrastive.json: settings, views, row counts, both protocols' retrieval and
    the all-pairs training's final loss (``asap_works`` null without windows)."""
    return {"config": dataclasses.asdict(cfg), "views": names, "n_segments": n_segments,
            "n_windows": n_windows, "protocol": PROTOCOL,
            "heldout_works": retrieval["percepiano_works"],
            "heldout_asap_works": retrieval.get("asap_works"),
            "final_loss_all_pairs": round(history[-1]["loss"], 6)}


def format_scores(scores: dict) -> str:
    """``k=v`` pairs, three decimals, for the log."""
    return " ".join(f"{k}={v:.3f}" for k, v in scores.items())
