"""Tests of pianoeval.audio_only.train: the train_audio stage's tables and cross-soundfont check."""
import logging

import numpy as np
import pandas as pd
import pytest

from config_factory import mlp_settings
from pianoeval.data.dimensions import DIMENSIONS
from pianoeval.audio_only import train as A

DIMS = list(DIMENSIONS)


def make_labels(n_passages=5, n_performers=8, seed=0):
    rng = np.random.default_rng(seed)
    segments = [f"Schubert_D960_mv2_8bars_{perf}_{p}" for p in range(1, n_passages + 1)
                for perf in range(1, n_performers + 1)]
    return pd.DataFrame({"segment": segments, **dict(zip(DIMS, rng.uniform(0.3, 0.8,
                                                                           (len(segments), 19)).T))})


def make_splits(labels):
    """Passage 1 is the piece split's test set, passages 2-5 its folds 0-3; performers dealt."""
    passage = labels["segment"].str.rsplit("_", n=1).str[1].astype(int)
    return pd.DataFrame({"segment": labels["segment"], "group": passage.astype(str),
                         "piece_split_s0": ["test" if p == 1 else str(p - 2) for p in passage],
                         "performer_split": [str(i % 4) for i in range(len(labels))]})


def embeddings(labels, offset=0.0, seed=0):
    """Features that predict the labels, plus noise and a soundfont-wide ``offset``."""
    rng = np.random.default_rng(seed)
    X = labels[DIMS[:4]].to_numpy() + rng.normal(0, 0.05, (len(labels), 4)) + offset
    cols = [f"emb_{i}" for i in range(4)]
    return pd.DataFrame({"segment": labels["segment"], **dict(zip(cols, X.T))}), cols


PARAMS = {"encoder": "spectral", "ridge": {"alphas": [0.1, 1.0, 10.0], "clip_to_training_range": True},
          "cross_soundfont": {"enabled": True, "soundfonts": [], "models": ["ridge"],
                              "standardize": ["none", "per_soundfont"],
                              "protocols": ["piece_cv", "piece_test"], "n_resamples": 100}}


def test_labelled_keeps_segments_with_an_embedding_and_logs_the_others(caplog):
    labels = make_labels()
    emb, _ = embeddings(labels)
    with caplog.at_level(logging.WARNING):
        data = A.labelled(labels, emb.iloc[3:], "FluidR3_GM")
    assert list(data["segment"]) == list(labels["segment"][3:])
    assert list(data.columns[:20]) == ["segment", *DIMS] and "emb_0" in data
    assert "FluidR3_GM: 3 labelled segments" in caplog.text


def test_cross_soundfonts_are_the_available_ones_asked_for(caplog):
    index = pd.DataFrame({"source": ["percepiano"] * 4 + ["asap"],
                          "soundfont": ["b", "a", "c", "a", "d"],
                          "status": ["ok", "ok", "failed", "ok", "ok"]})
    cross = {"enabled": True, "soundfonts": []}
    assert A.cross_soundfonts(index, "percepiano", cross) == ["a", "b"]
    assert A.cross_soundfonts(index, "percepiano", {**cross, "soundfonts": ["b", "d", "a"]}) == ["b", "a"]
    assert A.cross_soundfonts(index, "percepiano", {**cross, "enabled": False}) == []
    with caplog.at_level(logging.WARNING):
        assert A.cross_soundfonts(index, "percepiano", {**cross, "soundfonts": ["a", "c"]}) == []
    assert "skipped: embeddings of only ['a']" in caplog.text


def test_on_common_segments_keeps_the_shared_rows_in_order():
    a = pd.DataFrame({"segment": ["x", "y", "z"], "v": [1, 2, 3]})
    b = pd.DataFrame({"segment": ["z", "x"], "v": [4, 5]})
    out = A.on_common_segments({"a": a, "b": b})
    assert out["a"].to_dict("list") == {"segment": ["x", "z"], "v": [1, 3]}
    assert out["b"].to_dict("list") == {"segment": ["z", "x"], "v": [4, 5]}


def test_cross_pairs_skip_standardised_self_pairs_and_refuse_unknown_modes():
    pairs = list(A.cross_pairs(["ridge"], ["none", "per_soundfont"], ["a", "b"]))
    assert pairs == [("ridge", "none", "a", "a"), ("ridge", "none", "a", "b"),
                     ("ridge", "none", "b", "a"), ("ridge", "none", "b", "b"),
                     ("ridge", "per_soundfont", "a", "b"), ("ridge", "per_soundfont", "b", "a")]
    with pytest.raises(ValueError, match="'global' is not none or per_soundfont"):
        list(A.cross_pairs(["ridge"], ["none", "global"], ["a", "b"]))


def test_cross_soundfont_report_scores_every_pair_on_common_segments():
    labels = make_labels()
    splits = make_splits(labels)
    a, cols = embeddings(labels)
    b, _ = embeddings(labels, offset=1.0, seed=1)
    tables = {"a": (A.labelled(labels, a, "a"), cols), "b": (A.labelled(labels, b.iloc[:-1], "b"), cols)}
    report = A.cross_soundfont_report(PARAMS, tables, labels, splits)
    assert [report[k] for k in ("encoder", "protocols")] == ["spectral", ["piece_cv", "piece_test"]]
    assert [(r["standardize"], r["train"], r["test"]) for r in report["pairs"]] == [
        ("none", "a", "a"), ("none", "a", "b"), ("none", "b", "a"), ("none", "b", "b"),
        ("per_soundfont", "a", "b"), ("per_soundfont", "b", "a")]
    rows = {(r["standardize"], r["train"], r["test"]): r for r in report["pairs"]}
    assert set(rows["none", "a", "a"]["piece_cv"]) == {"r2", "r2_ci", "pearson_r", "pearson_r_ci", "n"}
    assert rows["none", "a", "a"]["piece_cv"]["n"] == 31  # 4 passages x 8 - the row b lacks
    # the offset ruins the unstandardised transfer; z-scoring per soundfont undoes it
    assert rows["per_soundfont", "a", "b"]["piece_cv"]["r2"] > rows["none", "a", "b"]["piece_cv"]["r2"]
    assert report == A.cross_soundfont_report(PARAMS, tables, labels, splits)  # deterministic


def test_cross_soundfont_report_without_two_soundfonts_has_no_pairs():
    report = A.cross_soundfont_report(PARAMS, {}, make_labels(), pd.DataFrame())
    assert report["pairs"] == [] and report["note"] == A.CROSS_NOTE


def test_fit_audio_models_split_by_split_match_one_call_and_log_progress(caplog):
    from pianoeval.audio_only.model import cross_fit_audio

    labels = make_labels()
    emb, cols = embeddings(labels)
    data, splits = A.labelled(labels, emb, "a"), make_splits(labels)
    params = {**PARAMS, "models": ["ridge", "mlp"], "splits": ["piece", "performer"],
              "mlp": mlp_settings(max_epochs=3, n_seeds=1, hidden=8)}
    with caplog.at_level(logging.INFO):
        fitted = list(A.fit_audio_models(params, data, cols, splits))
    assert [model for model, _ in fitted] == ["ridge", "mlp"]
    for model, predictions in fitted:
        whole, _ = cross_fit_audio(model, params, data, cols, splits, ("piece", "performer"))
        assert sorted(predictions) == sorted(whole)
        for protocol, frame in whole.items():
            pd.testing.assert_frame_equal(predictions[protocol], frame)
    # piece: 4 folds, performer: 4
    assert "train_audio ridge: 8/8 fold models (100%)" in caplog.text
    assert "train_audio mlp: 8/8 fold models (100%)" in caplog.text
