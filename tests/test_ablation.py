from pianoeval.evaluate.ablation import ablation_markdown, best_by_validation, describe

BASE = {"modalities": ["audio", "midi"], "fusion": "gated", "loss": "mse", "lds": False,
        "ordinal": "none", "rank_weight": 0.0, "tier_rank_weight": 0.0, "weak_weight": 0.0,
        "pretrain_heads": True, "unfreeze_top_k": 1}


def scores(r2):
    return {"r2": r2, "r2_ci": [r2 - 0.1, r2 + 0.1], "pearson_r": 0.5, "pearson_r_ci": [0.4, 0.6],
            "within_passage_r": 0.3}


def test_describe_names_every_choice():
    d = describe({**BASE, "loss": "huber", "lds": True, "ordinal": "corn", "rank_weight": 0.5})
    assert d == {"modalities": "audio+midi", "fusion": "gated",
                 "loss": "huber (LDS) + corn head + rank α=0.5",
                 "pretraining": "contrastive heads, unfreeze top 1"}
    single = describe({**BASE, "modalities": ["midi"]})
    assert single["fusion"] == "–" and single["pretraining"] == "none"


def test_best_by_validation_ignores_test_protocols():
    eval_dict = {"a": {"piece_cv": scores(0.4), "performer_cv": scores(0.5), "piece_test": scores(0.9)},
                 "b": {"piece_cv": scores(0.5), "performer_cv": scores(0.5), "piece_test": scores(0.1)}}
    assert best_by_validation(eval_dict, ["a", "b"]) == "b"


def test_ablation_markdown_rows_sorted_with_williams_against_the_single_modality():
    eval_dict = {"solo": {"piece_test": scores(0.3)},
                 "duo": {"piece_test": {**scores(0.5), "williams_single": {
                     "reference": "solo", "n_better_p05": 4, "n_worse_p05": 1, "mean_q": 0.12}}}}
    md = ablation_markdown(eval_dict, {"solo": {**BASE, "modalities": ["audio"]}, "duo": BASE},
                           ["piece_test", "lopo_cv"])
    assert "## lopo_cv" not in md  # nobody was scored on it
    table = md.split("## piece_test", 1)[1]
    assert table.index("| duo |") < table.index("| solo |")
    assert "4 / 1 (vs solo) | 0.120 |" in table and "| reference | – |" in table
