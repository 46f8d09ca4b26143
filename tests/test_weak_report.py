"""The `weak_labels` stage's steps (pianoeval.weak.report) on small hand-made samples."""
import numpy as np
import pandas as pd
import pytest

from pianoeval.weak.labeling import ABSTAIN, LF_SPECS, Aggregated, Reference
from pianoeval.weak.report import (WeakLabels, design_prior, development_mask, labels_table,
                                   weak_label, weak_metrics)

FEATURES = sorted({f for f, _ in LF_SPECS.values()})
PARAMS = {"tier_quantiles": [0.9, 0.97, 0.995], "typical_quantile": 0.8,
          "label_model": {"design_prior": False, "epochs": 20, "lr": 0.01, "l2": 0.0, "seed": 0}}


def samples_frame():
    """101 clean samples (every LF feature uniform on 0..1) and 2 degraded ones per family."""
    grid = np.linspace(0.0, 1.0, 101)
    clean = pd.DataFrame({f: grid for f in FEATURES}).assign(family="clean", tier=0)
    typical = {f: 0.5 for f in FEATURES}
    bad = pd.DataFrame([typical | {"align_insertion_rate": 5.0, "family": "wrong", "tier": 3},
                        typical | {"align_insertion_rate": 0.95, "family": "wrong", "tier": 1},
                        typical | {"sustain_down_ratio": 5.0, "family": "pedal", "tier": 3},
                        typical | {"sustain_down_ratio": 0.95, "family": "pedal", "tier": 1}])
    frame = pd.concat([clean, bad], ignore_index=True)
    n = len(frame)
    return frame.assign(sample=[f"s{i}" for i in range(n)], item=np.arange(n) // 2,
                        variant="v", work=[f"w{i % 8}" for i in range(n)])


def test_design_prior_counts_the_degraded_families_only():
    samples = pd.DataFrame({"family": ["clean", "a", "a", "b", "c"], "tier": [0, 1, 2, 3, 0]})
    prior = design_prior(samples)  # families a, b: 1 clean : 2 per tier
    np.testing.assert_allclose(prior, np.array([1, 2, 2, 2]) / 7)
    assert prior.sum() == pytest.approx(1.0)


def test_development_mask_holds_out_whole_works_a_quarter_of_them():
    works = pd.Series([f"w{i % 8}" for i in range(40)])
    dev = development_mask(works)
    assert dev.dtype == bool and len(dev) == 40
    held = set(works[dev])
    assert len(held) == 2  # 8 works, 4 folds
    assert set(works[~dev]).isdisjoint(held)  # no work on both sides
    two = pd.Series(["a", "a", "b"])  # 2 works: 2 folds, one work held out
    mask = development_mask(two)
    assert two[mask].nunique() == 1 and two[~mask].nunique() == 1
    assert not development_mask(pd.Series(["a", "a", "a"])).any()  # one work: nothing held out


def test_weak_label_fits_on_the_clean_samples_and_votes_the_degraded_ones():
    samples = samples_frame()
    weak = weak_label(samples, PARAMS)
    assert weak.L.shape == (len(samples), len(LF_SPECS) + 1) and weak.names[-1] == "typical"
    col = dict(zip(weak.names, weak.L[-4:].T.tolist()))
    assert col["unmatched_notes"] == [3, 1, ABSTAIN, ABSTAIN]
    assert col["pedal_saturation"] == [ABSTAIN, ABSTAIN, 3, 1]
    # the reference holds the tier cuts and the typical band, both sides of each
    assert weak.reference.quantiles.index.tolist() == pytest.approx(
        [0.005, 0.03, 0.1, 0.2, 0.8, 0.9, 0.97, 0.995])
    assert weak.reference.cut("align_insertion_rate", 0.9) == pytest.approx(0.9)
    assert weak.agg.probs.shape == (len(samples), 4)
    np.testing.assert_allclose(weak.agg.probs.sum(axis=1), 1.0, atol=1e-6)
    # the same params give the same labels (the label model is seeded)
    again = weak_label(samples, PARAMS)
    np.testing.assert_array_equal(again.agg.probs, weak.agg.probs)
    np.testing.assert_array_equal(again.agg.majority, weak.agg.majority)
    prior = weak_label(samples, PARAMS | {"label_model": PARAMS["label_model"]
                                          | {"design_prior": True}})
    assert not np.allclose(prior.agg.probs, weak.agg.probs)  # the prior reaches the model


def hand_made():
    """Four samples of two families, two LFs, a label model right on 3 and a majority on 2."""
    samples = pd.DataFrame({"sample": ["a", "b", "c", "d"], "item": [1, 1, 2, 2],
                            "family": ["f", "f", "g", "g"], "variant": ["x"] * 4,
                            "tier": [0, 1, 2, 3], "work": ["w1", "w1", "w2", "w2"],
                            "extra": [9, 9, 9, 9]})
    L = np.array([[0, 0], [1, ABSTAIN], [2, 1], [ABSTAIN, ABSTAIN]])
    probs = np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.6, 0.2, 0.1],
                      [0.0, 0.1, 0.8, 0.1], [0.25, 0.25, 0.25, 0.25]]) + 1e-8
    agg = Aggregated(probs, np.array([0, 1, 2, ABSTAIN]), np.array([0, 1, 1, ABSTAIN]))
    reference = Reference(pd.DataFrame({"x": [1.0, 2.0 / 3.0]}, index=[0.1, 0.9]))
    return samples, WeakLabels(reference, L, ["one", "two"], agg)


def test_labels_table_columns_and_rounding():
    samples, weak = hand_made()
    out = labels_table(samples, weak)
    assert out.columns.tolist() == ["sample", "item", "family", "variant", "tier", "lf_one",
                                    "lf_two", "p0", "p1", "p2", "p3", "label_model", "majority"]
    assert out["lf_two"].tolist() == [0, ABSTAIN, 1, ABSTAIN]
    assert out["p0"].tolist() == [0.7, 0.1, 0.0, 0.25]  # rounded to 6 decimals
    assert out["label_model"].tolist() == [0, 1, 2, ABSTAIN]
    assert out["majority"].tolist() == [0, 1, 1, ABSTAIN]
    assert "work" not in out.columns and "extra" not in out.columns


def test_weak_metrics_on_hand_made_labels():
    samples, weak = hand_made()
    labels = labels_table(samples, weak)
    dev = np.array([True, True, False, False])  # work w1 is the development work
    m = weak_metrics(labels, weak, dev)
    assert list(m) == ["n_samples", "n_lfs", "label_model", "majority_vote", "holdout_works",
                       "by_family", "lf_analysis", "reference_quantiles"]
    assert (m["n_samples"], m["n_lfs"]) == (4, 2)
    assert m["label_model"] == {"accuracy": 0.75, "accuracy_covered": 1.0, "coverage": 0.75}
    assert m["majority_vote"]["accuracy"] == 0.5
    held = m["holdout_works"]
    assert held["n_samples"] == 2
    assert held["label_model"] == {"accuracy": 0.5, "accuracy_covered": 1.0, "coverage": 0.5}
    assert held["majority_vote"]["accuracy"] == 0.0
    assert m["by_family"]["f"]["majority"]["accuracy"] == 1.0
    assert m["by_family"]["g"]["label_model"]["accuracy"] == 0.5
    one = m["lf_analysis"]["one"]
    assert one["polarity"] == [0, 1, 2] and one["coverage"] == 0.75
    assert one["emp_acc"] == 1.0 and one["correct"] == 3
    assert m["lf_analysis"]["two"]["emp_acc"] == 0.5
    assert m["reference_quantiles"] == {"0.1": {"x": 1.0}, "0.9": {"x": 0.666667}}
