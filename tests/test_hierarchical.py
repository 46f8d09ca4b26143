"""The note-sequence model, its input pipeline and its training loop, on small synthetic data."""
import numpy as np
import pandas as pd
import pytest
import torch

import pianoeval.sequence.variants as sequence
from pianoeval.data.dimensions import DIMENSIONS, N_DIMS
from pianoeval.sequence.model import (AttentionPool, Batch, HierarchicalAttentionModel,
                                      reverse_padded)
from pianoeval.sequence.data import Standardiser, collate, load_notes
from pianoeval.sequence.train import fit_fold, predict
from config_factory import SEQUENCE_MODEL_PARAMS, SEQUENCE_TRAIN_PARAMS, hier_config, train_config
from pianoeval.params import resolve_profile
from pianoeval.sequence.variants import ablation, cross_fit_sequence

PERF = ["pitch", "velocity", "log_ioi", "log_duration", "sustain_cc", "soft_cc"]
ALIGNED = ["matched", "score_duration_beat", "local_tempo_ratio", "onset_dev_ms",
           "onset_dev_beats", "velocity_rel_local", "velocity_rel_phrase", "articulation_ratio",
           "legato_overlap_sec"]


def make_notes(names, seed=0, min_notes=6, max_notes=30) -> pd.DataFrame:
    """A notes table with the align stage's columns: 3 beats per bar, 1..3 notes per beat."""
    rng = np.random.default_rng(seed)
    rows = []
    for name in names:
        n = int(rng.integers(min_notes, max_notes))
        beat = np.sort(rng.integers(0, max(2, n // 2), n))
        onset = beat * 0.5 + rng.uniform(0, 0.05, n)
        matched = (rng.random(n) > 0.1).astype(int)
        dev = lambda scale: np.where(matched == 1, rng.normal(0, scale, n), np.nan)
        rows.append(pd.DataFrame({
            "segment": name, "onset_sec": onset, "duration_sec": rng.uniform(0.05, 1, n),
            "pitch": rng.integers(30, 90, n), "velocity": rng.integers(20, 110, n),
            "sustain_cc": rng.choice([0, 127], n), "soft_cc": 0, "matched": matched,
            "score_onset_beat": beat.astype(float), "score_duration_beat": rng.uniform(0.25, 2, n),
            "beat_idx": beat, "bar_idx": beat // 3,
            "local_tempo_ratio": dev(0.1) + 1, "onset_dev_ms": dev(30), "onset_dev_beats": dev(0.05),
            "velocity_rel_local": dev(8), "velocity_rel_phrase": dev(10),
            "articulation_ratio": dev(0.3) + 1, "legato_overlap_sec": dev(0.05)}))
    return pd.concat(rows, ignore_index=True).sort_values(["segment", "onset_sec", "pitch"])


def names(n):
    return [f"Schubert_D960_mv2_8bars_{p}_{i}" for i in range(n // 4 + 1) for p in range(1, 5)][:n]


def labels_for(segs, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"segment": segs, **{d: rng.uniform(0.2, 0.8, len(segs)) for d in DIMENSIONS}})


def random_batch(lengths, n_features=5, seed=0) -> Batch:
    rng = np.random.default_rng(seed)
    xs = [rng.normal(size=(n, n_features)).astype(np.float32) for n in lengths]
    beats = [np.sort(rng.integers(0, max(1, n // 2), n)) for n in lengths]
    beats = [np.unique(b, return_inverse=True)[1].reshape(-1) for b in beats]
    bars = [np.unique(b // 2, return_inverse=True)[1].reshape(-1) for b in beats]
    return collate(xs, beats, bars)


def eval_model(hierarchical, n_features=5, seed=0, **kw):
    torch.manual_seed(seed)
    return HierarchicalAttentionModel(hier_config(n_features=n_features, d_model=16, n_heads=2,
                                                 hierarchical=hierarchical, **kw)).eval()


def row(batch: Batch, i: int) -> Batch:
    """Segment i alone, cut to its own length."""
    n = int(batch.mask[i].sum())
    return Batch(batch.x[i:i + 1, :n], batch.mask[i:i + 1, :n], batch.beat[i:i + 1, :n],
                 batch.bar[i:i + 1, :n])


# --------------------------------------------------------------------------- model


@pytest.mark.parametrize("hierarchical", [True, False])
def test_output_shape_with_padded_batch(hierarchical):
    batch = random_batch([7, 15, 3])
    out = eval_model(hierarchical)(batch)
    assert out.shape == (3, N_DIMS) and torch.isfinite(out).all()


@pytest.mark.parametrize("hierarchical", [True, False])
def test_padding_does_not_change_the_output(hierarchical):
    model = eval_model(hierarchical)
    batch = random_batch([7, 15, 3, 11])
    with torch.no_grad():
        batched = model(batch)
        alone = torch.cat([model(row(batch, i)) for i in range(4)])
        # garbage in the padding (features and group ids) must be ignored too
        pad = ~batch.mask
        noisy = Batch(batch.x.masked_fill(pad[..., None], 1e3), batch.mask,
                      batch.beat.masked_fill(pad, 9), batch.bar.masked_fill(pad, 5))
        garbage = model(noisy)
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batched, garbage, atol=1e-5, rtol=1e-5)


def test_reverse_padded_reverses_within_length_only():
    x = torch.arange(10.0).view(2, 5, 1)
    out = reverse_padded(x, torch.tensor([3, 5]))
    assert out[0, :, 0].tolist() == [2, 1, 0, 3, 4]
    assert out[1, :, 0].tolist() == [9, 8, 7, 6, 5]
    torch.testing.assert_close(reverse_padded(out, torch.tensor([3, 5])), x)


def test_hierarchical_pooling_with_uniform_attention_is_mean_of_means():
    """Context vectors 0 -> every score 0 -> uniform weights: beat = mean of its notes, bar =
    mean of its beats, segment = mean of bars. Checks the grouping by beat and bar."""
    model = eval_model(True)
    for pool in (model.beat_pool, model.bar_pool, model.top_pool):
        torch.nn.init.zeros_(pool.context.weight)
    h = torch.randn(1, 6, 16)
    beat = torch.tensor([[0, 0, 1, 2, 2, 2]])
    bar = torch.tensor([[0, 0, 0, 1, 1, 1]])
    out = model.pool(h, Batch(torch.zeros(1, 6, 5), torch.ones(1, 6, dtype=torch.bool), beat, bar))
    beats = torch.stack([h[0, :2].mean(0), h[0, 2], h[0, 3:].mean(0)])
    torch.testing.assert_close(out["beats"][0], beats)
    bars = torch.stack([beats[:2].mean(0), beats[2]])
    torch.testing.assert_close(out["bars"][0], bars)
    torch.testing.assert_close(out["segment"][0], bars.mean(0))


def test_permuting_notes_within_a_beat_leaves_beat_embeddings_unchanged():
    model = eval_model(True)
    h = torch.randn(1, 8, 16)
    beat = torch.tensor([[0, 0, 0, 1, 1, 2, 2, 2]])
    bar = torch.tensor([[0, 0, 0, 0, 0, 1, 1, 1]])
    mask = torch.ones(1, 8, dtype=torch.bool)
    x = torch.zeros(1, 8, 5)
    perm = torch.tensor([2, 0, 1, 4, 3, 7, 5, 6])  # within beats only
    with torch.no_grad():
        a = model.pool(h, Batch(x, mask, beat, bar))
        b = model.pool(h[:, perm], Batch(x, mask, beat[:, perm], bar[:, perm]))
        # moving a note to another beat does change the beats involved
        moved = model.pool(h, Batch(x, mask, torch.tensor([[0, 0, 1, 1, 1, 2, 2, 2]]), bar))
    torch.testing.assert_close(a["beats"], b["beats"])
    torch.testing.assert_close(a["segment"], b["segment"])
    assert not torch.allclose(a["beats"][0, :2], moved["beats"][0, :2])
    torch.testing.assert_close(a["beats"][0, 2], moved["beats"][0, 2])


def test_attention_weights_sum_to_one_over_group_members():
    pool = AttentionPool(8, 2)
    member = torch.tensor([[[True, True, False], [False, False, True], [False, False, False]]])
    w = pool.weights(torch.randn(1, 3, 8), member)
    torch.testing.assert_close(w.sum(-1), torch.tensor([[[1.0, 1.0], [1.0, 1.0], [0.0, 0.0]]]))
    assert (w[~member.unsqueeze(2).expand_as(w)] == 0).all()


# --------------------------------------------------------------------------- inputs


def test_load_notes_groups_beats_whether_counted_per_bar_or_per_segment():
    notes = make_notes(names(3))
    through = load_notes(notes, PERF + ALIGNED)
    per_bar = load_notes(notes.assign(beat_idx=notes["beat_idx"] % 3), PERF + ALIGNED)
    for a, b, c, d in zip(through.beat, per_bar.beat, through.bar, per_bar.bar):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(c, d)
    assert through.beat[0].min() == 0 and through.features[0].shape[1] == len(PERF + ALIGNED)
    assert np.isnan(through.features[0][0, PERF.index("log_ioi")])  # no previous note
    with pytest.raises(KeyError, match="nonexistent"):
        load_notes(notes, ["pitch", "nonexistent"])


def test_standardiser_weights_segments_equally_and_fills_nan():
    short = np.array([[0.0, np.nan]], np.float32)
    long = np.array([[2.0, 1.0]] * 9, np.float32)
    s = Standardiser.fit([short, long], clip=1.5)
    assert s.mean[0] == pytest.approx(1.0)  # mean of segment means, not of the 10 notes
    z = s.transform(np.array([[100.0, np.nan]], np.float32))
    assert z.tolist() == [[1.5, 0.0]]


def test_profile_overrides_and_ablation_feature_groups():
    section = {"profile": "big", "profiles": {"big": {"model": {"d_model": 128}, "device": "cuda"}},
               "seed": 1, "num_threads": 1, "device": "cpu", "performance_features": PERF,
               "aligned_features": ALIGNED, "model": {**SEQUENCE_MODEL_PARAMS, "d_model": 64},
               "train": {**SEQUENCE_TRAIN_PARAMS, "max_epochs": 3},
               "models": {"a": {"features": ["performance"], "hierarchical": False},
                          "b": {"features": ["performance", "aligned"], "hierarchical": True}}}
    resolved = resolve_profile(section, "train_sequence")
    assert resolved["model"] == {**SEQUENCE_MODEL_PARAMS, "d_model": 128}
    assert resolved["device"] == "cuda"
    assert section["model"]["d_model"] == 64  # the params dict itself is untouched
    with pytest.raises(KeyError, match="train_sequence.profile 'nope'"):
        resolve_profile({**section, "profile": "nope"}, "train_sequence")
    cols, model_cfg, train_cfg = ablation(resolved, "b")
    assert cols == PERF + ALIGNED and model_cfg.hierarchical and model_cfg.n_features == 15
    assert ablation(resolved, "a")[0] == PERF and train_cfg.seed == 1
    with pytest.raises(KeyError):
        ablation(resolved, "c")


# --------------------------------------------------------------------------- training

TINY = hier_config(d_model=16, n_heads=2, dropout=0.0)


def tiny_data(n, seed=0):
    segs = names(n)
    data = load_notes(make_notes(segs, seed), PERF + ALIGNED)
    Y = labels_for(list(data.segments), seed).loc[:, list(DIMENSIONS)].to_numpy()
    return data, Y


def test_overfits_a_handful_of_segments():
    data, Y = tiny_data(10)
    cfg = train_config(batch_size=4, lr=0.01, weight_decay=0.0, max_epochs=150, patience=150,
                      num_threads=1)
    fm = fit_fold(data, Y, np.arange(8), np.arange(8, 10), TINY, cfg)
    assert fm.history[0]["train_loss"] > 0.5
    assert fm.history[-1]["train_loss"] < 0.05  # standardised MSE: 1 - R^2 on the training set


def test_same_seed_same_predictions():
    data, Y = tiny_data(12)
    cfg = train_config(batch_size=4, max_epochs=3, num_threads=1)
    preds = [predict(fit_fold(data, Y, np.arange(8), np.arange(8, 10), TINY, cfg), data, np.arange(10, 12))
             for _ in range(2)]
    np.testing.assert_array_equal(preds[0], preds[1])
    other = predict(fit_fold(data, Y, np.arange(8), np.arange(8, 10), TINY,
                             train_config(batch_size=4, max_epochs=3, num_threads=1, seed=1)),
                    data, np.arange(10, 12))
    assert not np.array_equal(preds[0], other)
    assert preds[0].shape == (2, N_DIMS)
    assert (preds[0] >= Y[:8].min(0)).all() and (preds[0] <= Y[:8].max(0)).all()


def test_cross_fit_early_stops_on_an_inner_fold_never_on_fold_k_or_test(monkeypatch):
    segs = names(24)
    notes = load_notes(make_notes(segs), PERF + ALIGNED)
    rng = np.random.default_rng(0)
    piece = np.array(["test"] * 4 + ["0", "1", "2", "3"] * 4 + ["train_only"] * 4)[rng.permutation(24)]
    splits = pd.DataFrame({"segment": segs, "piece_split_s7": piece, "performer_split": "0",
                           "work_split": "0"})
    labels = labels_for(segs)
    calls = []
    real_fit = sequence.fit_fold

    def spy(data, Y, train_idx, val_idx, *args, **kw):
        calls.append((data.segments[train_idx], data.segments[val_idx]))
        return real_fit(data, Y, train_idx, val_idx, *args, **kw)

    monkeypatch.setattr(sequence, "fit_fold", spy)
    predictions, models = cross_fit_sequence(
        notes, labels, splits, PERF, TINY, train_config(batch_size=4, max_epochs=2, num_threads=1),
        ["piece"])
    fold_of = dict(zip(segs, piece))
    assert len(calls) == 4
    for k, (train, val) in enumerate(calls):
        inner = str((k + 1) % 4)
        assert {fold_of[s] for s in val} == {inner}  # early stopping on the next fold's rows
        assert not {fold_of[s] for s in train} & {"test", str(k), inner}
        assert {fold_of[s] for s in train} == {"0", "1", "2", "3", "train_only"} - {str(k), inner}
    cv, test = predictions["piece_s7_cv"], predictions["piece_s7_test"]
    assert cv.columns.tolist() == ["segment", "fold", *DIMENSIONS]
    assert sorted(cv["segment"]) == sorted(s for s in segs if fold_of[s] in "0123")
    assert len(test) == 4 * 4 and sorted(test["fold"].unique()) == [0, 1, 2, 3]
    assert set(test["segment"]) == {s for s in segs if fold_of[s] == "test"}
    assert sorted(models) == ["piece_s7_0", "piece_s7_1", "piece_s7_2", "piece_s7_3"]


def test_parallel_fold_models_match_sequential():
    """n_jobs only changes how fold models are scheduled, not what they learn."""
    segs = names(16)
    notes = load_notes(make_notes(segs), PERF)
    splits = pd.DataFrame({"segment": segs, "piece_split_s0": (["0", "1", "2", "3"] * 4)[:16],
                           "performer_split": "0", "work_split": "0"})
    cfg = train_config(batch_size=4, max_epochs=2, num_threads=1)
    runs = [cross_fit_sequence(notes, labels_for(segs), splits, PERF, TINY, cfg, ["piece"],
                               n_jobs=n_jobs)[0]["piece_s0_cv"] for n_jobs in (1, 2)]
    pd.testing.assert_frame_equal(runs[0], runs[1])
