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


def test_ablation_markdown_calls_a_winner_only_where_the_paired_ci_excludes_zero():
    eval_dict = {"solo": {"piece_test": {**scores(0.3), "n_seeds": 5}},
                 "duo": {"piece_test": scores(0.5)}, "trio": {"piece_test": scores(0.49)}}
    comparisons = {"piece_test": [
        {"a": "duo", "b": "solo", "difference": 0.2, "ci": [0.05, 0.35], "significant": True,
         "verdict": "duo better"},
        {"a": "duo", "b": "trio", "difference": 0.01, "ci": [-0.02, 0.04], "significant": False,
         "verdict": "inside the noise"}]}
    configs = {"solo": {**BASE, "modalities": ["audio"]}, "duo": BASE, "trio": BASE}
    md = ablation_markdown(eval_dict, configs, ["piece_test", "lopo_cv"], comparisons, "duo")
    assert "## lopo_cv" not in md  # nobody was scored on it
    table = md.split("## piece_test", 1)[1]
    assert table.index("| duo |") < table.index("| trio |") < table.index("| solo |")
    assert "| +0.200 [+0.050, +0.350], duo better |" in table
    assert "| +0.010 [-0.020, +0.040], inside the noise |" in table
    assert "[0.200, 0.400] (5)" in table and "| default |" in table
