"""The `contrastive_heads` stage's steps (pianoeval.fusion.contrastive_heads) on toy pairs."""
import logging

import numpy as np
import pandas as pd
import pytest

from config_factory import contrastive_config
from pianoeval.fusion.contrastive import heldout_retrieval
from pianoeval.fusion.contrastive_heads import (PROTOCOL, audio_views, checkpoint,
                                                contrastive_report, fit_all_pairs, format_scores,
                                                heldout_by_fold, retrieval_and_heads,
                                                retrieval_protocols, with_windows)
from pianoeval.fusion.data import FusionData, WindowPairs

CFG = contrastive_config(d_shared=4, epochs=2, batch_size=8)


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def toy_data(n=6, d_audio=3, d_midi=2):
    rng = np.random.default_rng(0)
    midi = rng.normal(size=(n, d_midi))
    return FusionData(segments=np.array([f"s{i}" for i in range(n)]),
                      passages=np.array([f"p{i // 2}" for i in range(n)]),
                      y=np.zeros((n, 19)), midi=midi,
                      audio={"A": midi @ rng.normal(size=(d_midi, d_audio)),
                             "B": midi @ rng.normal(size=(d_midi, d_audio))},
                      midi_columns=[f"m{j}" for j in range(d_midi)],
                      audio_columns=[f"emb_{j}" for j in range(d_audio)])


def test_audio_views_soundfonts_then_degraded_tiers():
    data = toy_data()
    samples = pd.DataFrame({"family": "audio", "tier": [1, 1, 2], "item": ["s0", "s3", "s0"],
                            **{f"audio_{j}": [10.0 + j, 20.0 + j, 30.0 + j] for j in range(3)}})
    views, names = audio_views(data, samples, ["B", "A"], [1, 2])
    assert names == ["B", "A", "degraded_tier1", "degraded_tier2"]
    assert views[0] is data.audio["B"] and views[1] is data.audio["A"]
    assert views[2][3].tolist() == [20.0, 21.0, 22.0] and views[3][0].tolist() == [30.0, 31.0, 32.0]
    assert np.isnan(views[2][[1, 2, 4, 5]]).all() and np.isnan(views[3][1:]).all()
    views, names = audio_views(data, samples, ["A"], [])
    assert names == ["A"] and len(views) == 1


def test_with_windows_appends_rows_and_leaves_unrendered_views_absent():
    views, midi = [np.zeros((2, 3)), np.ones((2, 3))], np.zeros((2, 2))
    win = WindowPairs(items=np.array(["w@0-1", "w@1-2", "v@0-1"]), works=np.array(["w", "w", "v"]),
                      midi=np.full((3, 2), 5.0), audio={"A": np.full((3, 3), 7.0)})
    out, out_midi, works = with_windows(views, ["A", "degraded_tier1"], midi, win)
    assert [v.shape for v in out] == [(5, 3), (5, 3)] and out_midi.shape == (5, 2)
    assert (out[0][2:] == 7.0).all() and np.isnan(out[1][2:]).all() and (out[1][:2] == 1).all()
    assert (out_midi[2:] == 5.0).all() and works.tolist() == ["w", "w", "v"]
    same, same_midi, none = with_windows(views, ["A", "degraded_tier1"], midi, None)
    assert same is views and same_midi is midi and len(none) == 0


def test_retrieval_protocols_hold_out_segments_works_then_window_groups():
    data = toy_data(n=8)
    rng = np.random.default_rng(1)
    window_works = np.array(["x", "x", "y", "y", "z", "z", "u", "u"])
    midi = np.concatenate([data.midi, rng.normal(size=(8, 2))])
    views = [np.concatenate([data.audio["A"], midi[8:] @ rng.normal(size=(2, 3))])]
    work_split = ["0"] * 4 + ["1"] * 4
    out = retrieval_protocols(views, ["A"], midi, work_split, window_works, CFG)
    assert sorted(out["percepiano_works"]["folds"]) == ["0", "1"]
    assert [f["A"]["n"] for f in out["percepiano_works"]["folds"].values()] == [4, 4]
    # 4 works dealt to 4 groups: each group holds out one work's two windows
    assert [f["A"]["n"] for f in out["asap_works"]["folds"].values()] == [2, 2, 2, 2]
    no_windows = retrieval_protocols(views[:1], ["A"], midi, work_split + [""] * 8,
                                     np.array([], str), CFG)
    assert list(no_windows) == ["percepiano_works"]


def test_fit_all_pairs_checkpoint_and_report():
    data = toy_data()
    heads, history = fit_all_pairs([data.audio["A"]], data.midi, CFG)
    assert len(history) == CFG.epochs and not heads.training
    ckpt = checkpoint(heads, CFG, data.audio_columns, data.midi_columns)
    assert ckpt["config"]["d_shared"] == 4 and ckpt["midi_columns"] == ["m0", "m1"]
    assert set(ckpt["heads"]) == set(heads.state_dict())
    retrieval = {"percepiano_works": {"folds": {}, "mean": {}}}
    report = contrastive_report(CFG, ["A"], 6, 0, retrieval, [{"loss": 1.23456789}])
    assert report["heldout_asap_works"] is None and report["final_loss_all_pairs"] == 1.234568
    assert report["protocol"] == PROTOCOL and report["views"] == ["A"]
    assert list(report) == ["config", "views", "n_segments", "n_windows", "protocol",
                            "heldout_works", "heldout_asap_works", "final_loss_all_pairs"]


def test_format_scores():
    assert format_scores({"@1": 0.5, "@5": 1}) == "@1=0.500 @5=1.000"


def test_heldout_by_fold_is_heldout_retrieval_one_fold_at_a_time():
    data = toy_data(n=9)
    views = [data.audio["A"], data.audio["B"].copy()]
    views[1][:2] = np.nan  # a view absent from some rows
    folds = ["0", "0", "0", "1", "1", "1", "2", "2", ""]
    assert heldout_by_fold(views, ["A", "B"], data.midi, folds, CFG) == \
        heldout_retrieval(views, ["A", "B"], data.midi, folds, CFG)


def test_retrieval_and_heads_count_every_training(caplog):
    data = toy_data(n=8)
    window_works = np.array(["x", "x", "y", "y"])
    midi = np.concatenate([data.midi, data.midi[:4]])
    views = [np.concatenate([data.audio["A"], data.audio["A"][:4]])]
    with caplog.at_level(logging.INFO):
        retrieval, heads, history = retrieval_and_heads(views, ["A"], midi, ["0"] * 4 + ["1"] * 4,
                                                        window_works, CFG)
    # 2 PercePiano works + 2 ASAP groups (2 works) + all pairs
    assert "contrastive_heads: 5/5 head trainings (100%)" in caplog.text
    assert retrieval == retrieval_protocols(views, ["A"], midi, ["0"] * 4 + ["1"] * 4,
                                            window_works, CFG)
    assert len(history) == CFG.epochs
