"""Contrastive alignment, fusion data and the fold-model training loop on small synthetic data."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from pianoeval.data.dimensions import DIMENSIONS
from config_factory import contrastive_config, contrastive_settings, fusion_config
from pianoeval.fusion.contrastive import (cached_heads, draw_views, info_nce, project,
                                          retrieval_recall, train_heads)
from pianoeval.fusion.train import FoldTrainer, FusionConfig, fit_fold, fold_tasks, prepare
from pianoeval.fusion.data import Aux, FusionData, Standardizer, load_aux, same_passage_pairs


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_info_nce_hand_value_and_minimal_for_aligned_pairs():
    z = torch.eye(4)
    tau = 0.5
    # aligned: every row's logits are 1/tau on the diagonal, 0 elsewhere, in both directions
    expected = -math.log(math.exp(2.0) / (math.exp(2.0) + 3))
    assert info_nce(z, z, tau).item() == pytest.approx(expected, rel=1e-6)
    shuffled = z[[1, 2, 3, 0]]
    assert info_nce(z, shuffled, tau).item() > info_nce(z, z, tau).item() + 1.0
    with pytest.raises(ValueError, match="equal shape"):
        info_nce(z, z[:3], tau)


def test_retrieval_recall_counts_the_partner_rank():
    a = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
    m = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    # audio row 1 (0,1): most similar MIDI is row 2 (1.0) then its partner row 1 (0.8): rank 2
    # audio row 2 (.7,.7): MIDI 1 scores 0.98 > partner 0.7 and MIDI 0 ties 0.7: rank 2
    r = retrieval_recall(a, m, ks=(1, 2))
    assert r["audio_to_midi@1"] == pytest.approx(1 / 3)
    assert r["audio_to_midi@2"] == pytest.approx(1.0)
    # MIDI row 1 (.6,.8): audio 2 scores 0.98 > partner 0.8: rank 2; MIDI row 2 (0,1): audio 1
    # scores 1.0 > partner 0.7: rank 2; MIDI row 0: rank 1
    assert r["midi_to_audio@1"] == pytest.approx(1 / 3)
    assert r["midi_to_audio@2"] == pytest.approx(1.0)


def test_draw_views_only_picks_available_views():
    views = np.stack([np.zeros((50, 2)), np.ones((50, 2))])
    available = np.stack([np.ones(50, bool), np.arange(50) % 2 == 0])
    out = draw_views(views, available, np.random.default_rng(0))
    assert (out[1::2] == 0).all()  # odd rows have only view 0
    assert 0 < out[::2, 0].mean() < 1  # even rows draw both


def test_contrastive_training_makes_pairs_retrievable():
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(80, 6))
    audio = latent @ rng.normal(size=(6, 12)) + 0.05 * rng.normal(size=(80, 12))
    midi = latent @ rng.normal(size=(6, 9))
    cfg = contrastive_config(d_shared=16, epochs=150, batch_size=40, lr=3e-3, dropout=0.0)
    heads, history = train_heads([audio], midi, cfg)
    assert history[-1]["loss"] < history[0]["loss"]
    after = retrieval_recall(*project(heads, audio, midi))
    assert after["audio_to_midi@1"] > 0.5 and after["midi_to_audio@1"] > 0.5  # chance: 1/80


def test_standardizer_keeps_all_nan_columns():
    X = np.array([[1.0, np.nan, 3.0], [3.0, np.nan, np.nan], [5.0, np.nan, 5.0]])
    Z = Standardizer().fit(X).transform(X)
    assert Z.shape == (3, 3) and np.isfinite(Z).all()
    assert (Z[:, 1] == 0).all()
    assert Z[1, 2] == pytest.approx(0.0)  # the median 4 fills the gap: the column mean


def test_same_passage_pairs():
    pairs = same_passage_pairs(np.array(["a", "b", "a", "a", "c"]))
    assert sorted(map(tuple, pairs)) == [(0, 2), (0, 3), (2, 3)]


def synthetic(n_passages=8, n_performers=10, seed=0) -> tuple[FusionData, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    n = n_passages * n_performers
    latent = rng.normal(size=(n, 4))
    y = 0.5 + 0.1 * np.tanh(latent @ rng.normal(size=(4, len(DIMENSIONS))))
    midi = latent @ rng.normal(size=(4, 7)) + 0.1 * rng.normal(size=(n, 7))
    audio = latent @ rng.normal(size=(4, 10)) + 0.1 * rng.normal(size=(n, 10))
    segments = np.array([f"Schubert_D960_mv2_8bars_{p}_{i}" for i in range(1, n_passages + 1)
                         for p in range(n_performers)])
    data = FusionData(segments=segments,
                      passages=np.array([s.rsplit("_", 2)[0] + s[-2:] for s in segments]),
                      y=y, midi=midi, audio={"sf": audio, "sf2": audio + 0.05},
                      midi_columns=[f"m{i}" for i in range(7)],
                      audio_columns=[f"emb_a{i}" for i in range(10)])
    fold = np.array([str(i % 4) for i in range(n)], dtype=object)
    fold[:n_performers] = "test"
    splits = pd.DataFrame({"segment": segments, "piece_split_s0": fold})
    return data, splits


CONTRASTIVE = contrastive_settings(epochs=5, batch_size=32)


def small_config(**over) -> FusionConfig:
    base = dict(soundfonts=("sf", "sf2"), d_shared=16, head_hidden=16, stage1_epochs=60,
                stage2_epochs=20, patience=10, lr=3e-3)
    return fusion_config(**{**base, **over})


def test_fit_fold_learns_and_is_deterministic():
    data, splits = synthetic()
    (_, _, train, val, held, _), *_ = fold_tasks(splits, ["piece"])
    fits = [fit_fold(data, train, val, small_config(), CONTRASTIVE) for _ in range(2)]
    preds = [f.predict(np.flatnonzero(held)) for f in fits]
    np.testing.assert_allclose(preds[0], preds[1])
    y = data.y[held]
    r2 = 1 - ((preds[0] - y) ** 2).sum() / ((y - y.mean(0)) ** 2).sum()
    assert r2 > 0.3, r2
    assert len(fits[0].epochs[0]) == 2  # two stages: pretrained heads frozen, then unfrozen


def test_cached_heads_train_once_and_a_hit_is_a_miss_bit_for_bit(tmp_path, caplog, monkeypatch):
    rng = np.random.default_rng(0)
    audio, midi = rng.normal(size=(40, 6)), rng.normal(size=(40, 5))
    cfg = contrastive_config(d_shared=4, epochs=3, batch_size=16)

    def heads_and_next_draw(folder):
        heads = cached_heads([audio], midi, cfg, folder)
        return heads.state_dict(), torch.rand(3)  # what training after the heads would draw

    plain = heads_and_next_draw(None)
    miss = heads_and_next_draw(tmp_path)
    [entry] = tmp_path.glob("*.pt")
    with monkeypatch.context() as patch:  # a hit trains nothing
        patch.setattr("pianoeval.fusion.contrastive.train_heads", None)
        hit = heads_and_next_draw(tmp_path)
    for state, draw in (miss, hit):
        assert all(torch.equal(state[k], plain[0][k]) for k in plain[0])
        assert torch.equal(draw, plain[1])
    cached_heads([audio], midi, contrastive_config(d_shared=4, epochs=4, batch_size=16), tmp_path)
    cached_heads([audio + 1e-9], midi, cfg, tmp_path)
    assert len(list(tmp_path.glob("*.pt"))) == 3  # other settings, other inputs: other entries
    entry.write_bytes(b"cut short")
    assert all(torch.equal(v, plain[0][k]) for k, v in heads_and_next_draw(tmp_path)[0].items())
    assert str(entry) in caplog.text and "training them again" in caplog.text


def test_fit_fold_with_the_heads_cache_predicts_as_without(tmp_path):
    data, splits = synthetic()
    (_, _, train, val, held, _), *_ = fold_tasks(splits, ["piece"])
    rows = np.flatnonzero(held)
    plain = fit_fold(data, train, val, small_config(), CONTRASTIVE).predict(rows)
    for _ in range(2):  # a miss, then a hit
        cached = fit_fold(data, train, val, small_config(), CONTRASTIVE, tmp_path).predict(rows)
        np.testing.assert_array_equal(cached, plain)
    assert len(list(tmp_path.glob("*.pt"))) == 2  # the early-stopped run's and the refit's


def test_stage_one_leaves_the_pretrained_heads_alone_and_stage_two_only_the_top_layer():
    data, _ = synthetic()
    train = np.ones(len(data.segments), bool)
    cfg = small_config(unfreeze_top_k=1)
    prep = prepare(data, train, cfg, None)
    trainer = FoldTrainer(data, prep, train, cfg, seed=0, contrastive=CONTRASTIVE)
    pretrained = {k: v.clone() for k, v in trainer.model().heads.state_dict().items()}
    stage1, _, _ = trainer.run(None, epochs=(10, 0))
    for key, value in stage1.heads.state_dict().items():
        assert torch.equal(value, pretrained[key]), key
    both, _, _ = FoldTrainer(data, prep, train, cfg, seed=0, contrastive=CONTRASTIVE).run(
        None, epochs=(10, 10))
    changed = {k for k, v in both.heads.state_dict().items() if not torch.equal(v, pretrained[k])}
    assert changed == {f"{m}.fc2.{p}" for m in ("audio", "midi") for p in ("weight", "bias")}


def test_aux_samples_of_held_out_segments_never_reach_a_fold():
    data, splits = synthetic()
    n = len(data.segments)
    items = np.concatenate([data.segments, data.segments, ["maestro/window"] * 2])
    tiers = np.array([0] * n + [2] * n + [0, 3])
    data.aux = Aux(item=items, tier=tiers, midi=np.vstack([data.midi, data.midi, data.midi[:2]]),
                   audio=np.full((2 * n + 2, 10), np.nan),
                   weak=np.tile([0.1, 0.2, 0.3, 0.4], (2 * n + 2, 1)),
                   pairs=np.array([[i, n + i] for i in range(n)] + [[2 * n, 2 * n + 1]]))
    train = np.zeros(n, bool)
    train[:20] = True
    prep = prepare(data, train, small_config(tier_rank_weight=1.0), data.aux)
    assert len(prep.aux["tier"]) == 2 * 20 + 2  # 20 training segments x 2 tiers + the window
    assert len(prep.aux["pairs"]) == 21
    fit = fit_fold(data, train, np.zeros(n, bool),
                   small_config(tier_rank_weight=1.0, weak_weight=1.0, ordinal="coral",
                                rank_weight=0.5, lds=True), CONTRASTIVE)
    assert np.isfinite(fit.predict(np.arange(n))).all()


def test_load_aux_maps_audio_columns_pairs_and_excluded_works():
    samples = pd.DataFrame({
        "sample": ["a#clean", "a#timing1", "b#audio1", "Schubert/Impromptu_op142/3@0#clean"],
        "item": ["a", "a", "b", "Schubert/Impromptu_op142/3@0"],
        "source": ["percepiano", "percepiano", "percepiano", "maestro"],
        "tier": [0, 1, 1, 0], "m0": [1.0, 2.0, 3.0, 4.0], "audio_x": [np.nan, np.nan, 0.5, np.nan]})
    pairs = pd.DataFrame({"better": ["a#clean"], "worse": ["a#timing1"]})
    weak = pd.DataFrame({"sample": ["a#clean"], "p0": [0.7], "p1": [0.1], "p2": [0.1], "p3": [0.1]})
    aux = load_aux(samples, pairs, weak, ["m0", "score_x"], ["emb_x"], [r"op[ ._]*142"])
    assert list(aux.item) == ["a", "a", "b"]
    assert np.isnan(aux.midi[:, 1]).all() and aux.audio[2, 0] == 0.5
    assert aux.pairs.tolist() == [[0, 1]]
    assert aux.weak[0].tolist() == [0.7, 0.1, 0.1, 0.1] and np.isnan(aux.weak[1]).all()


def _embeddings_root(root, rows):
    """A tiny encode_audio output: (source, soundfont, item, file, pooled vector) rows."""
    import json

    from pianoeval.audio.encode import write_pooled
    from pianoeval.audio.encoders import save_embedding

    root.mkdir()
    (root / "config.json").write_text(json.dumps({"feature_names": ["x", "y"]}))
    for _, _, _, file, vector in rows:
        (root / file).parent.mkdir(parents=True, exist_ok=True)
        save_embedding(root / file, {"pooled": np.asarray(vector, np.float32)})
    index = pd.DataFrame([{"source": s, "soundfont": sf, "item": i, "file": f, "status": "ok",
                           "error": "", "n_frames": 1} for s, sf, i, f, _ in rows])
    index.to_csv(root / "index.csv", index=False)
    write_pooled(index.assign(pooled=[np.asarray(r[4], np.float32) for r in rows]), root)


def test_window_name_and_its_errors():
    from pianoeval.audio.encode import window_name

    assert window_name("maestro/FluidR3_GM/Bach/Fugue/bwv_846/Shi05M/00010000-00030000.safetensors") \
        == "Bach/Fugue/bwv_846/Shi05M@10000-30000"
    with pytest.raises(ValueError, match="not a windowed render"):
        window_name("percepiano/FluidR3_GM/Beethoven_WoO80_thema_8bars_11_1.safetensors")


def test_load_window_pairs_matches_renders_to_clean_windows_and_drops_excluded_works(tmp_path):
    from pianoeval.fusion.data import load_window_pairs

    perf = "maestro/{sf}/Bach/Fugue/bwv_846/Shi05M/{w}.safetensors"
    rows = [("maestro", sf, "Bach/Fugue/bwv_846/Shi05M.mid", perf.format(sf=sf, w=w), vec)
            for sf, shift in (("sfA", 0.0), ("sfB", 10.0))
            for w, vec in (("00000000-00020000", [1 + shift, 2]), ("00010000-00030000", [3 + shift, 4]))]
    rows.append(("maestro", "sfA", "Schubert/Impromptu_op142/3/X.mid",
                 "maestro/sfA/Schubert/Impromptu_op142/3/X/00000000-00020000.safetensors", [9, 9]))
    _embeddings_root(tmp_path / "emb", rows)
    samples = pd.DataFrame({
        "item": ["Bach/Fugue/bwv_846/Shi05M@10000-30000", "Bach/Fugue/bwv_846/Shi05M@10000-30000",
                 "Bach/Fugue/bwv_846/Shi05M@0-20000", "Bach/Fugue/bwv_846/Shi05M@50000-70000",
                 "Schubert/Impromptu_op142/3/X@0-20000", "seg_1"],
        "source": ["maestro"] * 5 + ["percepiano"],
        "family": ["clean", "timing", "clean", "clean", "clean", "clean"],
        "work": ["maestro/Bach/Fugue/bwv_846"] * 4 + ["maestro/Schubert/Impromptu_op142/3", "p"],
        "m0": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]})
    pairs = load_window_pairs(samples, tmp_path / "emb", ["sfA", "sfB"], ["m0", "score_x"],
                              ["emb_x", "emb_y"], [r"op[ ._]*142"])
    # the unrendered window (50 s) and the excluded work are gone; sorted by item
    assert pairs.items.tolist() == ["Bach/Fugue/bwv_846/Shi05M@0-20000",
                                    "Bach/Fugue/bwv_846/Shi05M@10000-30000"]
    assert pairs.midi[:, 0].tolist() == [3.0, 1.0] and np.isnan(pairs.midi[:, 1]).all()
    assert pairs.audio["sfA"].tolist() == [[1, 2], [3, 4]]
    assert pairs.audio["sfB"].tolist() == [[11, 2], [13, 4]]


def test_window_pairs_join_the_heads_pretraining_only_when_asked():
    from pianoeval.fusion.data import WindowPairs

    data, _ = synthetic()
    rng = np.random.default_rng(1)
    data.windows = WindowPairs(items=np.array(["w1", "w2", "w3"]), works=np.array(["a", "a", "b"]),
                               midi=rng.normal(size=(3, 7)),
                               audio={"sf": rng.normal(size=(3, 10)),
                                      "sf2": np.vstack([rng.normal(size=(2, 10)), np.full((1, 10), np.nan)])})
    train = np.ones(len(data.segments), bool)
    with_windows = prepare(data, train, small_config(), None)
    views, midi = with_windows.windows
    assert len(views) == 2 and midi.shape == (3, 7)
    assert np.isnan(views[1][2]).all() and np.isfinite(views[0]).all()  # an absent view stays absent
    # the scalers are the PercePiano training rows': the windows do not move them
    assert np.allclose(with_windows.midi.numpy(), prepare(data, train, small_config(pretrain_windows=False), None).midi.numpy())
    assert prepare(data, train, small_config(pretrain_windows=False), None).windows is None
    assert prepare(data, train, small_config(modalities=("midi",)), None).windows is None
    heads = [FoldTrainer(data, prep, train, small_config(), 0, CONTRASTIVE).model().heads.state_dict()
             for prep in (with_windows, prepare(data, train, small_config(pretrain_windows=False), None))]
    assert any(not torch.equal(heads[0][k], heads[1][k]) for k in heads[0])


def test_heldout_retrieval_never_holds_out_training_only_rows():
    from pianoeval.fusion.contrastive import heldout_retrieval, work_groups

    rng = np.random.default_rng(0)
    midi = rng.normal(size=(12, 5))
    audio = midi @ rng.normal(size=(5, 6))
    folds = ["0"] * 4 + ["1"] * 4 + [""] * 4
    out = heldout_retrieval([audio], ["sf"], midi, folds, contrastive_config(d_shared=8, epochs=2))
    assert sorted(out["folds"]) == ["0", "1"]
    assert [out["folds"][f]["sf"]["n"] for f in ("0", "1")] == [4, 4]
    groups = work_groups(np.array(["a", "b", "a", "c", "d"]), 2, seed=0)
    assert groups[0] == groups[2] and sorted(set(groups)) == ["0", "1"]
    assert groups == work_groups(np.array(["a", "b", "a", "c", "d"]), 2, seed=0)


def test_a_fusion_model_spec_merges_its_overrides_and_pops_its_splits():
    import yaml
    from pathlib import Path

    from pianoeval.params import resolve_profile
    from pianoeval.fusion.variants import FusionInputs, FusionModels

    root = Path(__file__).resolve().parents[1]
    section = resolve_profile(yaml.safe_load((root / "params.yaml").read_text())["train_fusion"],
                              "train_fusion")
    section["models"] = {"plain": None, "huber_lopo": {"loss": "huber", "splits": ["lopo"],
                                                     "piece_seeds": 2}}
    models = FusionModels(section, {}, [], FusionInputs(*[Path("unused")] * 7))
    cfg, splits, piece_seeds = models.spec("plain")
    assert cfg == FusionConfig.from_dict(section["model"])
    assert (splits, piece_seeds) == (section["splits"], section["piece_seeds"])
    cfg, splits, piece_seeds = models.spec("huber_lopo")
    assert cfg.loss == "huber" and splits == ["lopo"] and piece_seeds == 2
    assert section["models"]["huber_lopo"]["splits"] == ["lopo"]  # the section is left as it was
    with pytest.raises(KeyError, match=r"no model 'gated' in train_fusion.models \(have \['huber_lopo', 'plain'\]\)"):
        models.spec("gated")
