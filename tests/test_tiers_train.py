"""The `train_tiers` stage's steps (pianoeval.tier_ranker.train) on toy samples."""
import logging

import numpy as np
import pandas as pd

from config_factory import make_ranker_config
from pianoeval.tier_ranker.model import RankerConfig
from pianoeval.tier_ranker.train import (META, cross_fit_scores, modality_features, ranker_config,
                                         score_modalities)

CONFIG = make_ranker_config(hidden=0, epochs=50)


def toy(n_works=3, audio_works=2):
    """Per work two passages, each a ladder of tiers 0..2 for a MIDI family and for audio;
    ``feat`` and ``audio_level`` fall with the tier, ``deg_amount`` gives it away outright."""
    rng = np.random.default_rng(0)
    rows, pairs = [], []
    for w in range(n_works):
        for i in range(2):
            item = f"w{w}/p{i}"
            for family in ("timing", "audio"):
                if family == "audio" and w >= audio_works:
                    continue
                ladder = [f"{item}#{family}{t}" for t in range(3)]
                for t, sample in enumerate(ladder):
                    rows.append({"sample": sample, "item": item, "source": "s", "work": f"w{w}",
                                 "family": family, "variant": "v", "tier": t, "deg_amount": t,
                                 "feat": -t + rng.normal(0, 0.1),
                                 "audio_level": -t + rng.normal(0, 0.1)})
                pairs += [(ladder[a], ladder[b], family, item, a, b)
                          for a in range(3) for b in range(a + 1, 3)]
    return (pd.DataFrame(rows),
            pd.DataFrame(pairs, columns=["better", "worse", "family", "item", "tier_better",
                                         "tier_worse"]))


def test_modality_features_split_midi_from_audio_and_drop_metadata_and_settings():
    columns = [*META, "deg_jitter_ms", "velocity_mean", "align_match_rate", "audio_mel00_mean"]
    assert modality_features(columns, "midi") == ["velocity_mean", "align_match_rate"]
    assert modality_features(columns, "audio") == ["audio_mel00_mean"]


def test_ranker_config_casts_the_yaml_values():
    params = {"hidden": 0, "margin": 1, "lr": "1e-2", "weight_decay": 0, "epochs": 5, "seed": 3}
    config = ranker_config(params)
    assert config == RankerConfig(hidden=0, margin=1.0, lr=0.01, weight_decay=0.0, epochs=5, seed=3)
    assert isinstance(config.margin, float) and isinstance(config.weight_decay, float)


def test_score_modalities_scores_each_modality_out_of_fold():
    samples, pairs = toy()
    scores, metrics = score_modalities(samples, pairs, CONFIG, n_folds=2)
    assert list(scores.columns) == [*META, "modality", "score"]
    assert list(metrics) == ["pairwise_accuracy", "midi", "audio"]
    midi = samples[samples["family"] != "audio"].reset_index(drop=True)
    expected = cross_fit_scores(midi, pairs, ["feat"], CONFIG, 2)
    np.testing.assert_array_equal(scores.loc[scores["modality"] == "midi", "score"], expected)
    assert metrics["midi"]["n_pairs"] + metrics["audio"]["n_pairs"] == len(pairs)
    assert metrics["pairwise_accuracy"] > 0.9


def test_a_modality_from_one_work_is_skipped(caplog):
    samples, pairs = toy(audio_works=1)
    with caplog.at_level(logging.WARNING):
        scores, metrics = score_modalities(samples, pairs, CONFIG, n_folds=4)
    assert list(metrics) == ["pairwise_accuracy", "midi"]
    assert set(scores["modality"]) == {"midi"}
    assert "audio: 6 sample(s) from 1 work(s)" in caplog.text

