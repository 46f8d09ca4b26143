"""The compare_midibert stage's logic: which protocols and seeds it compares, and one protocol's
comparison of the seed-averaged and the single-seed predictions."""
import numpy as np
import pandas as pd
import pytest

from pianoeval.data.dimensions import DIMENSIONS
from pianoeval.evaluate.pairwise import (compare_pair, compare_protocol, seed_folders,
                                         shared_protocols, summarise_seeds)

SEGS = [f"Schubert_D960_mv2_8bars_{p}_{k}" for p in range(1, 7) for k in range(1, 5)]


def frames(noise_a: float, noise_b: float, seed: int = 0):
    """Labels and two models' predictions, A's with less noise than B's when noise_a < noise_b."""
    rng = np.random.default_rng(seed)
    truth = rng.uniform(0.2, 0.8, (len(SEGS), len(DIMENSIONS)))
    frame = lambda x: pd.DataFrame(x, columns=list(DIMENSIONS)).assign(segment=SEGS, fold=0)
    noisy = lambda s: frame(truth + rng.normal(0, s, truth.shape))
    return frame(truth).drop(columns="fold"), noisy(noise_a), noisy(noise_b)


def test_shared_protocols_are_sorted_stems_that_both_models_have(tmp_path):
    for m, names in {"a": ["z_cv.csv", "piece_cv.csv", "lopo_cv.csv", "notes.txt"],
                     "b": ["piece_cv.csv", "z_cv.csv", "only_b.csv"]}.items():
        (tmp_path / m).mkdir()
        for n in names:
            (tmp_path / m / n).write_text("")
    (tmp_path / "b" / "lopo_cv.csv").mkdir()  # not a file: lopo_cv is not shared
    assert shared_protocols(tmp_path, "a", "b") == ["piece_cv", "z_cv"]
    assert shared_protocols(tmp_path, "b", "a") == ["piece_cv", "z_cv"]
    assert shared_protocols(tmp_path, "a", "missing") == []


def test_seed_folders_are_ordered_by_seed_number_not_by_name(tmp_path):
    for n in ["predictions_seed10", "predictions_seed2", "predictions_seed0", "other"]:
        (tmp_path / n).mkdir()
    (tmp_path / "lopo_0_seed0.pt").write_text("")
    assert seed_folders(tmp_path) == {"seed0": "predictions_seed0", "seed2": "predictions_seed2",
                                      "seed10": "predictions_seed10"}
    assert list(seed_folders(tmp_path)) == ["seed0", "seed2", "seed10"]
    assert seed_folders(tmp_path / "missing") == {}


def test_compare_protocol_adds_per_seed_entries_and_their_mean_to_the_pooled_comparison():
    labels, pa, pb = frames(0.05, 0.3)
    seeds = {"seed0": frames(0.1, 0.2, 1)[1:], "seed1": frames(0.3, 0.1, 2)[1:]}
    kw = dict(n_resamples=100, seed=3, confidence=0.9)
    out = compare_protocol((pa, pb), seeds, labels, "a", "b", **kw)
    assert list(out) == ["a", "b", "r2_difference", "williams", "per_seed", "seed_mean"]
    pooled = compare_pair(pa, pb, labels, "a", "b", **kw)
    assert {k: out[k] for k in pooled} == pooled
    single = {s: compare_pair(*p, labels, "a", "b", **kw) for s, p in seeds.items()}
    assert list(out["per_seed"]) == ["seed0", "seed1"]
    for s, c in single.items():
        assert out["per_seed"][s] == {
            "a": c["a"], "b": c["b"], "r2_difference": c["r2_difference"],
            "williams_better_worse": [c["williams"]["n_better_p05"], c["williams"]["n_worse_p05"]]}
    assert out["per_seed"]["seed0"]["r2_difference"] > 0 > out["per_seed"]["seed1"]["r2_difference"]
    assert out["seed_mean"] == summarise_seeds(single, "a", "b")
    assert out["seed_mean"]["seeds_a_better"] == 1 and out["seed_mean"]["seeds"] == 2


def test_compare_protocol_without_seeds_is_the_pooled_comparison_only():
    labels, pa, pb = frames(0.05, 0.3)
    groups = {s: s.rsplit("_", 1)[0] for s in SEGS}
    out = compare_protocol((pa, pb), {}, labels, "a", "b", n_resamples=100, groups=groups)
    assert out == compare_pair(pa, pb, labels, "a", "b", n_resamples=100, groups=groups)
    assert "per_seed" not in out and "seed_mean" not in out
    with pytest.raises(KeyError):
        compare_protocol((pa, pb), {}, labels, "a", "b", n_resamples=100, groups={})
