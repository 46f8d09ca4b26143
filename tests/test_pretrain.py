"""Pre-training and fine-tuning of the MIDI encoder: masking, schedule, kill and resume, shapes."""
import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from pianoeval.data.dimensions import DIMENSIONS
from pianoeval.data.midi import NOTE_DTYPE
from pianoeval.midibert.model import MidiBert
from pianoeval.midibert.head import MidiBertRegressor
from pianoeval.tokens.tokenizer import make_tokenizer, vocab_sizes
from pianoeval.midibert.finetune import (TokenData, cross_fit_midibert,
                                         fit_fold_bert, predict_bert)
from config_factory import finetune_config, midibert_config, pretrain_config
from pianoeval.midibert.pretrain import (IGNORE, CorpusSampler, batches,
                                         evaluate_mlm, lr_at, mask_tokens, pad_batch, pretrain)

VOCAB = [4, 68, 92, 35, 99]
TOK_CFG = {"kind": "cpword", "tempo_bpm": 120.0, "beat_res": {"0-4": 16, "4-12": 4},
           "num_velocities": 32}
TINY = dict(d_model=16, n_heads=2, n_layers=1, d_ff=32, dropout=0.1, max_len=64)


def test_masking_rate_and_80_10_10_on_a_large_batch():
    gen = torch.Generator().manual_seed(0)
    B, L = 256, 512
    ids = torch.stack([torch.randint(2, v, (B, L)) for v in VOCAB], -1)
    valid = torch.ones(B, L, dtype=torch.bool)
    valid[:, 400:] = False  # padding is never selected
    inputs, targets, sel = mask_tokens(ids, valid, 0.15, 1, VOCAB, 2, gen)
    n_valid = int(valid.sum())
    assert not sel[~valid].any()
    assert abs(sel.sum().item() / n_valid - 0.15) < 0.003
    masked = (inputs == 1).all(-1) & sel       # every field of a compound token masked together
    assert not ((inputs == 1).any(-1) & ~(inputs == 1).all(-1)).any()
    kept = (inputs == ids).all(-1) & sel
    changed = sel & ~masked & ~kept
    n = sel.sum().item()
    assert abs(masked.sum().item() / n - 0.8) < 0.01
    assert abs(kept.sum().item() / n - 0.1) < 0.01   # (a random draw equal in every field: ~never)
    assert abs(changed.sum().item() / n - 0.1) < 0.01
    assert (inputs[changed] >= 2).all()             # random tokens are never PAD or MASK
    assert (targets[sel] == ids[sel]).all() and (targets[~sel] == IGNORE).all()
    assert (inputs[~sel] == ids[~sel]).all()


def test_lr_warms_up_then_decays_to_min():
    cfg = pretrain_config(steps=1000, warmup=100, lr=1e-3, min_lr=1e-4)
    assert lr_at(0, cfg) == pytest.approx(1e-5)
    assert lr_at(99, cfg) == pytest.approx(1e-3)
    assert lr_at(550, cfg) == pytest.approx(5.5e-4)
    assert lr_at(1000, cfg) == pytest.approx(1e-4)
    lrs = [lr_at(s, cfg) for s in range(100, 1000)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def _corpus(n_files=4, n_notes=300, seed=0):
    rng = np.random.default_rng(seed)
    parts = []
    for _ in range(n_files):
        n = np.zeros(n_notes, NOTE_DTYPE)
        n["onset_sec"] = np.cumsum(rng.uniform(0.05, 0.4, n_notes))
        n["duration_sec"] = rng.uniform(0.1, 1.0, n_notes)
        n["pitch"] = rng.integers(40, 90, n_notes)
        n["velocity"] = rng.integers(30, 110, n_notes)
        parts.append(n)
    return np.concatenate(parts), np.arange(n_files + 1) * n_notes


def _setup(steps=12, every=4):
    tok = make_tokenizer(TOK_CFG)
    notes, offsets = _corpus()
    cfg = pretrain_config(steps=steps, batch_size=2, seq_len=48, window_notes=30, warmup=3,
                         checkpoint_every=every, lr=3e-3)
    sampler = CorpusSampler(notes, offsets, np.arange(4), tok, cfg, pad_id=0)
    return midibert_config(vocab_sizes=vocab_sizes(tok), **TINY), cfg, sampler


def test_sampler_batches_depend_only_on_seed_and_step():
    _, cfg, sampler = _setup()
    a, va = sampler.batch(5)
    b, vb = sampler.batch(5)
    c, _ = sampler.batch(6)
    assert torch.equal(a, b) and torch.equal(va, vb) and not torch.equal(a, c)
    assert a.shape[1] <= cfg.seq_len and a.shape[2] == 5


def test_loader_workers_draw_the_same_batches_in_order():
    _, _, sampler = _setup()
    inline = list(batches(sampler, 3, 11))
    pooled = list(batches(sampler, 3, 11, workers=2))
    assert len(inline) == len(pooled) == 8
    for (a, va), (b, vb) in zip(inline, pooled):
        assert torch.equal(a, b) and torch.equal(va, vb)
    assert torch.equal(inline[2][0], sampler.batch(5)[0])


class Killed(Exception):
    pass


def test_kill_and_resume_continues_the_same_run(tmp_path):
    model_cfg, cfg, sampler = _setup(steps=12, every=4)
    ref, ref_log, _ = pretrain(model_cfg, cfg, sampler, 1, 2, tmp_path / "a", tmp_path / "a.jsonl")

    def kill_after_step_6(record):
        if record["step"] == 6:
            raise Killed
    with pytest.raises(Killed):
        pretrain(model_cfg, cfg, sampler, 1, 2, tmp_path / "b", tmp_path / "b.jsonl",
                 on_step=kill_after_step_6)
    # the killed run logged steps 0..6; the last checkpoint is after step 3 (4 steps done)
    assert len((tmp_path / "b.jsonl").read_text().splitlines()) == 7
    model, log, info = pretrain(model_cfg, cfg, sampler, 1, 2, tmp_path / "b", tmp_path / "b.jsonl")
    assert info["resumed_from"] == 4 and info["steps_run"] == 8
    assert [r["step"] for r in log] == list(range(12))      # no step twice, none missing
    assert log == ref_log                                   # the loss curve continues exactly
    for (k, v), (_, w) in zip(ref.state_dict().items(), model.state_dict().items()):
        assert torch.equal(v, w), k
    # finished: a rerun does nothing and keeps the log
    _, again, info = pretrain(model_cfg, cfg, sampler, 1, 2, tmp_path / "b", tmp_path / "b.jsonl")
    assert info["steps_run"] == 0 and again == ref_log


def test_another_configuration_does_not_resume(tmp_path):
    model_cfg, cfg, sampler = _setup(steps=4, every=2)
    pretrain(model_cfg, cfg, sampler, 1, 2, tmp_path / "c", tmp_path / "c.jsonl")
    cfg.lr = 1e-3
    _, log, info = pretrain(model_cfg, cfg, sampler, 1, 2, tmp_path / "c", tmp_path / "c.jsonl")
    assert info["resumed_from"] is None and len(log) == 4


def test_dropout_override_switches_dropout_off_for_pretraining_only(tmp_path):
    model_cfg, cfg, sampler = _setup(steps=2, every=100)
    model_cfg = replace(model_cfg, dropout=0.5)
    ids, valid = sampler.batch(0)

    def repeatable(model):  # two training-mode passes agree only without dropout
        model.train()
        return torch.equal(model(ids, valid), model(ids, valid))
    kept, _, _ = pretrain(model_cfg, cfg, sampler, 1, 2, tmp_path / "e", tmp_path / "e.jsonl")
    assert not repeatable(kept)
    off, _, _ = pretrain(model_cfg, replace(cfg, dropout=0.0), sampler, 1, 2, tmp_path / "f",
                         tmp_path / "f.jsonl")
    assert repeatable(off)
    finetuned = MidiBert(model_cfg)  # the saved weights, built with the config's dropout
    finetuned.load_state_dict(off.state_dict())
    assert not repeatable(finetuned)


def test_pretraining_lowers_the_loss_and_heldout_scores_are_sane(tmp_path):
    model_cfg, cfg, sampler = _setup(steps=60, every=100)
    model, log, _ = pretrain(model_cfg, cfg, sampler, 1, 2, tmp_path / "d", tmp_path / "d.jsonl")
    assert np.mean([r["loss"] for r in log[-10:]]) < np.mean([r["loss"] for r in log[:5]])
    seqs = [sampler.batch(1000 + i)[0][0].numpy() for i in range(8)]
    scores = evaluate_mlm(model, seqs, 0, 1, 2, seed=0)
    assert 0 <= scores["accuracy"] <= 1 and len(scores["accuracy_per_field"]) == 5
    assert scores["perplexity"] == pytest.approx(
        float(np.exp(np.mean(scores["cross_entropy_per_field"]))), rel=1e-4)
    assert evaluate_mlm(model, seqs, 0, 1, 2, seed=0) == scores  # fixed masking draw


def _token_data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(10, 40, n)
    seqs = [np.stack([rng.integers(2, v, m) for v in VOCAB], -1) for m in lengths]
    return TokenData(np.array([f"s{i:02d}" for i in range(n)]), seqs)


def test_finetune_overfits_a_tiny_set_and_predicts_19_dims():
    data = _token_data(12)
    Y = np.random.default_rng(1).uniform(0.2, 0.8, (12, 19))
    cfg = finetune_config(batch_size=4, lr=3e-3, head_lr=3e-3, max_epochs=60, patience=60,
                         warmup_frac=0.05, head_dropout=0.0)
    model_cfg = midibert_config(vocab_sizes=VOCAB, **{**TINY, "dropout": 0.0})
    fm = fit_fold_bert(data, Y, np.arange(10), np.arange(10, 12), model_cfg, cfg)
    tuned = [h["train_loss"] for h in fm.history if h["stage"] == "finetune"]
    assert len(tuned) == 60 and tuned[-1] < 0.3 * tuned[0]
    pred = predict_bert(fm, data, np.arange(12))
    assert pred.shape == (12, 19)
    assert (pred >= Y[:10].min(0) - 1e-9).all() and (pred <= Y[:10].max(0) + 1e-9).all()
    with pytest.raises(ValueError, match="overlap"):
        fit_fold_bert(data, Y, np.arange(10), np.arange(9, 12), model_cfg, cfg)


def test_pretrained_weights_load_into_the_regressor():
    cfg = midibert_config(vocab_sizes=VOCAB, **TINY)
    bert = MidiBert(cfg)
    reg = MidiBertRegressor(cfg)
    reg.load_encoder(bert.state_dict())
    for k, v in bert.state_dict().items():
        if not k.startswith("heads."):  # the MLM heads are not used for regression
            assert torch.equal(v, reg.bert.state_dict()[k]), k
    with pytest.raises(KeyError):
        reg.load_encoder({"nonsense.weight": torch.zeros(1)})


def _labelled_tokens(n: int, n_test: int, seed: int):
    """Token data, random labels and a piece split of ``n_test`` test rows and 4 folds."""
    data = _token_data(n)
    segs = list(data.segments)
    labels = pd.DataFrame(np.random.default_rng(seed).uniform(0, 1, (n, 19)), columns=list(DIMENSIONS))
    labels.insert(0, "segment", segs)
    piece = ["test"] * n_test + [str(i % 4) for i in range(n - n_test)]
    splits = pd.DataFrame({"segment": segs, "piece_split_s0": piece, "performer_split": piece,
                           "work_split": piece})
    return data, labels, splits


def test_cross_fit_writes_every_protocol_and_never_trains_on_test():
    data, labels, splits = _labelled_tokens(40, 8, seed=2)
    cfg = finetune_config(batch_size=8, max_epochs=1, patience=1)
    model_cfg = midibert_config(vocab_sizes=VOCAB, **TINY)
    preds, _, models = cross_fit_midibert(data, labels, splits, model_cfg, cfg, None, ["piece"])
    assert set(preds) == {"piece_s0_cv", "piece_s0_test"}
    assert len(preds["piece_s0_cv"]) == 32 and len(preds["piece_s0_test"]) == 8 * 4
    assert preds["piece_s0_test"].shape[1] == 2 + 19
    test_rows = set(range(8))
    fold_of = splits["piece_split_s0"].to_numpy()
    for name, fms in models.items():
        k = name.rsplit("_", 1)[1]
        for fm in fms:
            assert not test_rows & set(fm.train_index) and not test_rows & set(fm.val_index)
            assert k not in set(fold_of[fm.train_index]) | set(fold_of[fm.val_index])  # never fold k


def test_n_seeds_averages_the_runs_of_each_seed():
    data, labels, splits = _labelled_tokens(24, 4, seed=4)
    model_cfg = midibert_config(vocab_sizes=VOCAB, **TINY)
    run = lambda **kw: cross_fit_midibert(data, labels, splits, model_cfg,
                                          finetune_config(batch_size=8, max_epochs=1, **kw),
                                          None, ["piece"])
    both, per_seed, models = run(n_seeds=2)
    one, two = run(seed=0)[0], run(seed=1)[0]
    assert all(len(fms) == 2 for fms in models.values()) and sorted(per_seed) == [0, 1]
    with pytest.raises(ValueError, match="n_seeds"):
        run(n_seeds=0)
    for protocol in ("piece_s0_cv", "piece_s0_test"):
        dims = list(DIMENSIONS)
        assert not np.allclose(one[protocol][dims], two[protocol][dims])  # the seeds differ
        np.testing.assert_allclose(both[protocol][dims], (one[protocol][dims] + two[protocol][dims]) / 2,
                                   atol=1e-6)
        # each seed's own predictions are that seed's single run
        np.testing.assert_allclose(per_seed[1][protocol][dims], two[protocol][dims], atol=1e-6)
        assert per_seed[0][protocol]["segment"].tolist() == one[protocol]["segment"].tolist()


def test_seed_i_starts_from_encoder_i_cycling_over_the_encoders(monkeypatch):
    import pianoeval.midibert.finetune as finetune
    data, labels, splits = _labelled_tokens(12, 4, seed=5)
    model_cfg = midibert_config(vocab_sizes=VOCAB, **TINY)
    encoders = []
    for seed in range(2):
        torch.manual_seed(10 + seed)
        encoders.append(MidiBert(model_cfg).state_dict())
    started = {}
    real_fit = finetune.fit_fold_bert

    def recording_fit(*args):
        cfg, state = args[-2], args[-1]
        started.setdefault(cfg.seed, set()).add(
            next(i for i, e in enumerate(encoders) if e is state))
        return real_fit(*args)

    monkeypatch.setattr(finetune, "fit_fold_bert", recording_fit)
    cfg = finetune_config(batch_size=8, max_epochs=0, seed=7, n_seeds=3)
    cross_fit_midibert(data, labels, splits, model_cfg, cfg, encoders, ["piece"])
    assert started == {7: {0}, 8: {1}, 9: {0}}
    with pytest.raises(ValueError, match="empty"):
        cross_fit_midibert(data, labels, splits, model_cfg, cfg, [], ["piece"])


def test_load_encoders_orders_by_seed_and_rejects_empty_or_mixed_folders(tmp_path):
    from pianoeval.midibert.finetune import load_encoders
    with pytest.raises(FileNotFoundError, match="pretrain_midi"):
        load_encoders(tmp_path)
    for seed in (10, 2, 0):
        torch.save({"seed": seed, "model_config": {"d_model": 16}}, tmp_path / f"seed{seed}.pt")
    assert [e["seed"] for e in load_encoders(tmp_path)] == [0, 2, 10]
    assert load_encoders(tmp_path / "seed2.pt")[0]["seed"] == 2
    torch.save({"seed": 3, "model_config": {"d_model": 32}}, tmp_path / "seed3.pt")
    with pytest.raises(ValueError, match="architecture"):
        load_encoders(tmp_path)


def test_compare_pair_gives_both_r2_with_cis_and_williams_per_dimension():
    from pianoeval.evaluate.pairwise import compare_pair
    rng = np.random.default_rng(0)
    segs = [f"Schubert_D960_mv2_8bars_{p}_{k}" for p in range(1, 9) for k in range(1, 6)]
    truth = rng.uniform(0.2, 0.8, (len(segs), 19))
    labels = pd.DataFrame(truth, columns=list(DIMENSIONS)).assign(segment=segs)
    good = truth + rng.normal(0, 0.05, truth.shape)
    bad = truth + rng.normal(0, 0.3, truth.shape)
    frame = lambda p: pd.DataFrame(p, columns=list(DIMENSIONS)).assign(segment=segs, fold=0)
    out = compare_pair(frame(good), frame(bad), labels, "a", "b", n_resamples=100)
    assert out["a"]["r2"] > out["b"]["r2"] and out["r2_difference"] > 0
    lo, hi = out["a"]["r2_ci"]
    assert lo <= out["a"]["r2"] <= hi
    w = out["williams"]
    assert w["baseline"] == "b" and len(w["per_dim"]) == 19 and w["n_better_p05"] >= 15


def test_summarise_seeds_averages_single_model_r2_and_counts_wins():
    from pianoeval.evaluate.pairwise import summarise_seeds
    per_seed = {f"seed{i}": {"a": {"r2": ra}, "b": {"r2": rb}, "r2_difference": ra - rb}
                for i, (ra, rb) in enumerate([(0.4, 0.3), (0.35, 0.36), (0.45, 0.3)])}
    out = summarise_seeds(per_seed, "a", "b")
    assert out["a"] == pytest.approx(0.4) and out["b"] == pytest.approx(0.32)
    assert out["r2_difference"] == pytest.approx(0.08)
    assert out["r2_difference_range"] == pytest.approx([-0.01, 0.15])
    assert out["seeds_a_better"] == 2 and out["seeds"] == 3
    with pytest.raises(ValueError, match="no seeds"):
        summarise_seeds({}, "a", "b")


def test_layer_states_end_in_the_forward_output_and_the_head_pools_mean_and_std_of_each():
    cfg = midibert_config(vocab_sizes=VOCAB, **{**TINY, "n_layers": 2})
    reg = MidiBertRegressor(cfg, layer_mix=True).eval()
    data = _token_data(3)
    from pianoeval.midibert.pretrain import pad_batch
    ids, valid = pad_batch(data.seqs, 0)
    states = reg.bert.layer_states(ids, valid)
    assert len(states) == 3 and all(s.shape == states[0].shape for s in states)
    assert torch.allclose(states[-1][valid], reg.bert(ids, valid)[valid], atol=1e-6)
    # pooled = [mean, std] over the valid tokens of each depth, padding ignored
    raw = reg.pool.raw(states, valid).detach().numpy()
    assert raw.shape == (3, 2 * 16 * 3) and reg.out.in_features == 2 * 16 * 3
    for i, n in enumerate(valid.sum(1).tolist()):
        for j, h in enumerate(states):
            h = h[i, :n].detach().numpy()
            np.testing.assert_allclose(raw[i, 32 * j:32 * j + 16], h.mean(0), atol=1e-5)
            np.testing.assert_allclose(raw[i, 32 * j + 16:32 * (j + 1)], h.std(0), atol=1e-3)
    # the scaler standardises what it was set on; without layer_mix only the last depth is read
    reg.pool.set_scaler(torch.as_tensor(raw))
    z = reg.pool(states, valid).detach().numpy()
    spread = raw.std(0) > 1e-3
    assert spread.sum() > 80
    np.testing.assert_allclose(z[:, spread].mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(z[:, spread].std(0), 1.0, atol=1e-3)
    assert MidiBertRegressor(cfg).out.in_features == 2 * 16


def test_ridge_stage_is_sklearn_ridge_on_frozen_pooled_features_then_finetuning_continues():
    from sklearn.linear_model import RidgeCV

    data = _token_data(16)
    Y = np.random.default_rng(3).uniform(0.2, 0.8, (16, 19))
    model_cfg = midibert_config(vocab_sizes=VOCAB, **TINY)
    encoder = MidiBert(model_cfg).state_dict()
    cfg = finetune_config(batch_size=4, max_epochs=0, layer_mix=True, ridge_alphas=(0.1, 10.0, 1000.0))
    fm = fit_fold_bert(data, Y, np.arange(12), np.arange(12, 16), model_cfg, cfg, encoder)
    for k, v in fm.model.bert.state_dict().items():
        if not k.startswith("heads."):
            assert torch.equal(v, encoder[k]), k  # frozen in the ridge stage
    assert [h["stage"] for h in fm.history] == ["ridge"] and fm.best_epoch == 0
    # the head's predictions are RidgeCV's on the standardised pooled features
    from pianoeval.midibert.pretrain import pad_batch
    with torch.no_grad():
        ids, valid = pad_batch(data.seqs, 0)
        raw = fm.model.pool.raw(fm.model.features(ids, valid), valid).numpy()
    x = (raw - raw[:12].mean(0)) / raw[:12].std(0)
    ridge = RidgeCV(alphas=cfg.ridge_alphas).fit(x[:12], (Y[:12] - fm.y_mean) / fm.y_std)
    assert fm.history[0]["alpha"] == ridge.alpha_
    with torch.no_grad():
        head = fm.model(ids, valid).numpy()
    np.testing.assert_allclose(head, ridge.predict(x), atol=1e-3)
    # then fine-tuning continues the history and may move the encoder
    both = fit_fold_bert(data, Y, np.arange(12), np.arange(12, 16), model_cfg,
                         finetune_config(**{**cfg.__dict__, "max_epochs": 2, "patience": 5}), encoder)
    assert [h["stage"] for h in both.history] == ["ridge", "finetune", "finetune"]
    assert both.best_epoch == int(np.argmin([h["val_loss"] for h in both.history]))


def test_alibi_bias_is_minus_slope_times_distance_with_padding_keys_at_minus_inf():
    bert = MidiBert(midibert_config(vocab_sizes=VOCAB, **{**TINY, "n_heads": 4, "position": "alibi"}))
    assert bert.pos is None and torch.allclose(bert.slopes, torch.tensor([2.0 ** -2, 2.0 ** -4,
                                                                          2.0 ** -6, 2.0 ** -8]))
    valid = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    bias = bert._attention_bias(valid)
    assert bias.shape == (2, 4, 5, 5)
    assert bias[0, 1, 4, 1].item() == pytest.approx(-3 * 2.0 ** -4)  # |4 - 1| = 3 positions apart
    assert torch.equal(bias[0, 2], bias[0, 2].T) and (bias[0, :, range(5), range(5)] == 0).all()
    assert torch.isinf(bias[1, :, :, 3:]).all() and torch.isfinite(bias[1, :, :, :3]).all()
    with pytest.raises(ValueError, match="position"):
        MidiBert(midibert_config(vocab_sizes=VOCAB, **{**TINY, "position": "rotary"}))


@pytest.mark.parametrize("position", ["learned", "alibi"])
def test_encoder_ignores_padding_and_trains_and_infers_alike(position):
    # nn.TransformerEncoderLayer's inference fast path returned NaN with ALiBi's per-head bias
    torch.manual_seed(0)
    bert = MidiBert(midibert_config(vocab_sizes=VOCAB, **{**TINY, "dropout": 0.0,
                                                         "position": position}))
    ids, valid = pad_batch(_token_data(3).seqs, 0)
    valid[1, valid[1].sum() // 2:] = False
    ids[1][~valid[1]] = 0
    trained = bert.train()(ids, valid)
    with torch.no_grad():
        inferred = bert.eval()(ids, valid)
        longer = bert(torch.cat([ids, torch.zeros_like(ids[:, :7])], 1),
                      torch.cat([valid, torch.zeros_like(valid[:, :7])], 1))[:, :ids.shape[1]]
    assert torch.isfinite(inferred).all()
    assert torch.allclose(trained, inferred, atol=1e-6)
    assert torch.allclose(inferred[valid], longer[valid], atol=1e-5)
