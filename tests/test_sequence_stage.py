"""The `train_sequence` stage's steps (pianoeval.sequence.variants): its notes, one ablation trained
end to end, and the per-epoch log and summary it writes."""
import json
import logging
from types import SimpleNamespace

import pandas as pd

from config_factory import SEQUENCE_MODEL_PARAMS, SEQUENCE_TRAIN_PARAMS, hier_config
from pianoeval.sequence.variants import (history_jsonl, sequence_notes, train_ablation,
                                         training_summary, unnoted_segments)
from test_hierarchical import ALIGNED, PERF, labels_for, make_notes, names

SECTION = {"performance_features": PERF, "aligned_features": ALIGNED, "seed": 0,
           "num_threads": 1, "device": "cpu", "splits": ["piece"], "n_jobs": 1,
           "piece_seeds": None, "model": {**SEQUENCE_MODEL_PARAMS, "d_model": 16, "n_heads": 2, "dropout": 0.0},
           "train": {**SEQUENCE_TRAIN_PARAMS, "batch_size": 4, "max_epochs": 2},
           "models": {"flat": {"features": ["performance"], "hierarchical": False}}}


def fold_model(best_epoch, *losses):
    history = [{"epoch": e, "train_loss": t, "val_loss": v} for e, (t, v) in enumerate(losses)]
    return SimpleNamespace(best_epoch=best_epoch, history=history)


def test_sequence_notes_have_every_feature_and_warn_about_unnoted_segments(caplog):
    segs = names(5)
    with caplog.at_level(logging.WARNING):
        notes = sequence_notes(make_notes(segs[:4]), labels_for(segs), SECTION)
    assert list(notes.columns) == PERF + ALIGNED
    assert unnoted_segments(labels_for(segs), notes) == [segs[4]]
    assert "1 labelled segments have no notes" in caplog.text
    caplog.clear()
    sequence_notes(make_notes(segs), labels_for(segs), SECTION)
    assert not caplog.text


def test_history_jsonl_rounds_floats_fold_by_fold():
    models = {"a_0": fold_model(0, (0.1234567, 1.0)), "a_1": fold_model(1, (2.0, 3.0), (1.5, 0.25))}
    lines = history_jsonl(models).splitlines(keepends=True)
    assert [json.loads(line) for line in lines] == [
        {"fold": "a_0", "epoch": 0, "train_loss": 0.123457, "val_loss": 1.0},
        {"fold": "a_1", "epoch": 0, "train_loss": 2.0, "val_loss": 3.0},
        {"fold": "a_1", "epoch": 1, "train_loss": 1.5, "val_loss": 0.25}]
    assert all(line.endswith("\n") for line in lines)
    assert lines[0].startswith('{"fold": "a_0", "epoch"')  # the fold leads every record
    assert history_jsonl({}) == ""


def test_training_summary_keeps_each_folds_best_epoch_without_timings():
    models = {"a_0": fold_model(1, (2.0, 3.0), (1.5, 0.1111111), (1.0, 0.5))}
    summary = training_summary(["pitch"], hier_config(hierarchical=True), models)
    assert summary == {"features": ["pitch"], "hierarchical": True,
                       "folds": {"a_0": {"best_epoch": 1, "epochs": 3, "train_loss": 1.5,
                                         "val_loss": 0.111111}}}


def test_train_ablation_returns_predictions_models_and_their_summary():
    segs = names(16)
    splits = pd.DataFrame({"segment": segs, "piece_split_s0": ["0", "1", "2", "3"] * 4,
                           "performer_split": "0", "work_split": "0"})
    labels = labels_for(segs)
    notes = sequence_notes(make_notes(segs), labels, SECTION)
    predictions, models, summary = train_ablation(SECTION, "flat", notes, labels, splits)
    assert sorted(predictions) == ["piece_s0_cv"]
    assert sorted(predictions["piece_s0_cv"]["segment"]) == sorted(segs)
    assert list(models) == list(summary["folds"]) == [f"piece_s0_{k}" for k in range(4)]
    assert summary["features"] == PERF and summary["hierarchical"] is False
    assert all(fold["epochs"] == 2 for fold in summary["folds"].values())
    assert all(fm.columns == PERF for fm in models.values())
