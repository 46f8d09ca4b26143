"""End to end: the real DVC pipeline on a small mirror cut from the real data, in a temp copy."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pianoeval.data.download import sha256_file
from pianoeval.data.labels import rating_segment_name
from pianoeval.data.segments import parse_segment

ROOT = Path(__file__).resolve().parents[1]
MIRROR = Path(os.environ.get("PIANOEVAL_DATA_MIRROR", ROOT.parent / "shared" / "data"))
PASSAGES = {  # two passages of each of the four works
    "Schubert_D960_mv3_8bars_1", "Schubert_D960_mv3_8bars_2", "Schubert_D960_mv2_8bars_1",
    "Schubert_D960_mv2_8bars_2", "Schubert_D935_no.3_4bars_1", "Schubert_D935_no.3_4bars_2",
    "Beethoven_WoO80_thema_8bars_1", "Beethoven_WoO80_var3_8bars_2",
}
LABELS = "labels/label_2round_mean_reg_19_with0_rm_highstd0.all1202.json"

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not MIRROR.is_dir(), reason=f"no data mirror at {MIRROR}")]


def small_mirror(dest: Path) -> int:
    """Copy the chosen passages (performances, scores, labels, ratings) and a little ASAP and
    GiantMIDI into ``dest``; returns the number of labelled segments."""
    src = MIRROR / "percepiano"
    keep = lambda stem: re.match(r"^\s*\S", stem) and parse_segment(stem).passage in PASSAGES
    for folder in ("midi", "score_midi"):
        (dest / "percepiano" / folder).mkdir(parents=True)
        for f in (src / folder).glob("*.mid"):
            if "bars" in f.stem and keep(f.stem):
                shutil.copy(f, dest / "percepiano" / folder / f.name)
    (dest / "percepiano" / "labels").mkdir()
    labels = {k: v for k, v in json.loads((src / LABELS).read_text()).items() if keep(k)}
    (dest / "percepiano" / LABELS).write_text(json.dumps(labels))
    ratings = pd.read_csv(src / "labels" / "total_2rounds.csv")
    mask = ratings["filename"].map(lambda f: rating_segment_name(f) in labels)
    ratings[mask].to_csv(dest / "percepiano" / "labels" / "total_2rounds.csv", index=False)
    shutil.copytree(MIRROR / "asap" / "Bach" / "Fugue" / "bwv_846", dest / "asap" / "bwv_846")
    for folder in ("giantmidi-piano", "maestro", "ground_truth"):
        (dest / "giantmidi" / folder).mkdir(parents=True)
        for f in sorted((MIRROR / "giantmidi" / folder).glob("*.mid"))[:2]:
            shutil.copy(f, dest / "giantmidi" / folder / f.name)
    return len(labels)


def run(cmd, cwd, env):
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def test_pipeline_end_to_end(tmp_path):
    n_segments = small_mirror(tmp_path / "mirror")
    repo = tmp_path / "repo"
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for rel in listed:
        if (ROOT / rel).is_file():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, repo / rel)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["ingest"]["mirror"] = str(tmp_path / "mirror")  # a DVC dependency, outside the repo
    params["features"]["n_jobs"] = 1
    params["evaluate"]["n_resamples"] = 200
    # tiny profiles of the audio, alignment and sequence-model stages: the same code, less work.
    # render, encode_audio, degrade and train_fusion keep their 2 worker processes (the parallel
    # path, and half the test's time on 2 cores); the others have too little work for a pool.
    params["render"]["maestro"]["max_performances"] = 1  # the degrade stage's window: one contrastive pair
    params["render"]["maestro"]["max_windows_per_performance"] = 1
    params["train_audio"]["mlp"]["n_seeds"] = 1
    params["train_audio"]["mlp"]["max_epochs"] = 60
    params["train_audio"]["cross_soundfont"]["n_resamples"] = 100
    params["align"]["n_jobs"] = 1
    params["train_sequence"]["n_jobs"] = 1
    params["train_sequence"]["splits"] = ["piece"]  # lopo and the other splits: baselines and fusion
    params["train_audio"]["splits"] = ["piece", "performer"]
    params["train_sequence"]["model"]["d_model"] = 16
    params["train_sequence"]["train"]["max_epochs"] = 2
    params["degrade"]["sources"]["maestro"].update(max_performances=1, max_windows=1)
    params["degrade"]["audio"]["max_items"] = 12
    params["train_tiers"]["epochs"] = 30
    params["tokenize"]["max_len"] = 64
    params["pretrain_midi"]["model"].update(d_model=16, n_heads=2, n_layers=1, d_ff=32)
    params["pretrain_midi"]["train"].update(steps=3, batch_size=2, seq_len=64, window_notes=40, warmup=1, checkpoint_every=2)
    params["pretrain_midi"]["eval"]["max_sequences"] = 8
    params["pretrain_midi"]["n_encoders"] = 2  # fewer encoders than fine-tuning seeds: they cycle
    params["finetune_midi"]["n_jobs"] = 1
    params["finetune_midi"]["splits"] = ["piece"]
    params["finetune_midi"]["train"].update(max_epochs=1)
    params["contrastive_heads"]["epochs"] = 3
    params["train_fusion"]["model"].update(d_shared=16, head_hidden=16, stage1_epochs=8,
                                           stage2_epochs=4, patience=3)
    params["train_fusion"]["models"] = {  # every loss term in one model, lopo included
        "fusion_audio": {"modalities": ["audio"], "splits": ["piece"]},
        "fusion_midi": {"modalities": ["midi"], "splits": ["piece"]},
        "fusion_concat": {"splits": ["piece", "lopo"], "rank_weight": 0.5, "ordinal": "coral",
                         "tier_rank_weight": 0.5, "weak_weight": 0.5, "lds": True}}
    evaluate = params["evaluate"]
    evaluate["models"] = [m for m in evaluate["models"]  # only those trained here
                          if not m.startswith("fusion_") or m in params["train_fusion"]["models"]]
    scored = set(evaluate["models"])  # the evaluate section may name only scored models
    evaluate["single_modality"] = [m for m in evaluate["single_modality"] if m in scored]
    evaluate["comparisons"]["ablations"] = [m for m in evaluate["comparisons"]["ablations"]
                                            if m in scored]
    evaluate["comparisons"]["pairs"] = [p for p in evaluate["comparisons"]["pairs"]
                                        if set(p) <= scored]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    env = {**os.environ, "PIANOEVAL_DATA_MIRROR": str(tmp_path / "mirror"),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    run(["git", "init", "-q"], repo, env)
    run(["dvc", "repro"], repo, env)

    splits = pd.read_csv(repo / "data" / "splits.csv", dtype=str)
    seeds = params["splits"]["seeds"]
    assert splits.columns.tolist() == ["segment", "group", *(f"piece_split_s{s}" for s in seeds),
                                       "performer_split", "work_split", "lopo_split"]
    assert len(splits) == n_segments
    for column in (c for c in splits.columns if c.startswith("piece_split_s")):
        assert (splits.groupby("group")[column].nunique() == 1).all()  # a group never splits
    ingest = json.loads((repo / "metrics" / "ingest" / "percepiano.json").read_text())
    assert ingest["resolved_from"] == "mirror" and ingest["midi_ok"] > n_segments
    evaluation = json.loads((repo / "metrics" / "eval.json").read_text())
    protocols = {"piece_cv", "performer_cv", "work_cv", "lopo_cv", "piece_test", "performer_test"}
    for model in ("mean", "ridge"):
        assert set(evaluation[model]) == protocols
        for protocol, scores in evaluation[model].items():
            lo, hi = scores["r2_ci"]
            assert lo is None or lo <= hi, (model, protocol)
            # the training-fold mean's resampled R² all lie below its estimate (a constant
            # predictor only loses when the resample's mean moves), and a test set of this cut
            # holds one or two passage groups: only ridge's cv intervals must bracket the estimate
            if model == "ridge" and protocol.endswith("_cv"):
                assert lo - 1e-5 <= scores["r2"] <= hi + 1e-5, (model, protocol)
            assert scores["ci_unit"] == "passage" and len(scores["per_dim"]) == 19
        for protocol in ("piece_cv", "piece_test"):  # every seed of the repeated piece split
            assert sorted(map(int, evaluation[model][protocol]["r2_by_seed"])) == sorted(seeds)
    # the training-fold mean cannot explain variance across held-out passages
    assert evaluation["mean"]["piece_cv"]["r2"] < 0.05
    pred = pd.read_csv(repo / "metrics" / "predictions" / "ridge" / f"piece_s{seeds[0]}_test.csv")
    assert sorted(pred["fold"].unique()) == [0, 1, 2, 3]
    comparisons = json.loads((repo / "metrics" / "comparisons.json").read_text())
    pair = next(c for c in comparisons["piece_test"] if c["role"] == "baseline")
    assert (pair["a"], pair["b"]) == ("fusion_concat", "ridge")
    assert pair["ci"][0] <= pair["difference"] <= pair["ci"][1]

    # quality tiers: every clean segment x 5 MIDI families x 3 tiers, pairs, weak labels, scorer
    degrade = json.loads((repo / "metrics" / "degrade.json").read_text())
    n_clean = degrade["n_clean_segments"]["percepiano"] + degrade["n_clean_segments"]["maestro"]
    assert degrade["n_failed"] == 0 and n_clean == n_segments + 1
    assert degrade["n_samples_by_family_tier"]["timing/3"] == n_clean
    assert degrade["n_pairs_by_family"]["accuracy"] == 6 * n_clean
    assert not (repo / "data" / "degrade" / "midi").exists()  # degrade.write_midi: false
    weak = json.loads((repo / "metrics" / "weak_labels.json").read_text())
    assert weak["n_samples"] == 16 * n_clean and len(weak["lf_analysis"]) >= 8
    tiers = json.loads((repo / "metrics" / "tiers.json").read_text())
    assert 0.0 <= tiers["pairwise_accuracy"] <= 1.0
    assert set(tiers["midi"]["pairwise_accuracy_by_family"]) == {
        "timing", "accuracy", "dynamics", "pedal", "articulation"}

    # audio+MIDI: contrastive retrieval before/after, fusion vs single modalities, lopo, ablation
    contrastive = json.loads((repo / "metrics" / "contrastive.json").read_text())
    recall = contrastive["heldout_works"]["mean"]["FluidR3_GM"]
    assert set(recall) == {"before", "after", "chance"}
    assert 0.0 <= recall["after"]["audio_to_midi@1"] <= 1.0
    fused = evaluation["fusion_concat"]
    assert {"piece_cv", "piece_test", "lopo_cv"} <= set(fused)
    assert fused["lopo_cv"]["n"] == n_segments  # every segment held out once
    assert fused["piece_test"]["by_seed"][str(seeds[0])]["williams_single"]["reference"] in (
        "fusion_audio", "fusion_midi")
    pretrain = json.loads((repo / "metrics" / "pretrain.json").read_text())
    assert sorted(pretrain["encoders"]) == ["0", "1"] and pretrain["train"]["steps_per_encoder"] == 3
    assert sorted(p.name for p in (repo / "metrics" / "pretrain" / "curves").iterdir()) == ["seed0.csv", "seed1.csv"]
    finetuned = json.loads((repo / "metrics" / "finetune_midi" / "midibert_pretrained.json").read_text())
    assert finetuned["encoder_seeds"] == [0, 1]
    comparison = json.loads((repo / "metrics" / "midibert_comparison.json").read_text())
    single = comparison[f"piece_s{seeds[0]}_test"]["seed_mean"]  # each fine-tuning seed's models too
    assert single["seeds"] == params["finetune_midi"]["n_seeds"] == len(
        comparison[f"piece_s{seeds[0]}_test"]["per_seed"])
    ablation = (repo / "metrics" / "ablation.md").read_text()
    assert "## lopo_cv" in ablation and "| fusion_concat" in ablation.replace("**", "")

    # the release model, and `pianoeval assess` with it on a performance and its score
    card = (repo / "models" / "release" / "MODEL_CARD.md").read_text()
    assert "| with_score | " in card and "| performance_only | " in card
    perf = next((tmp_path / "mirror" / "percepiano" / "midi").glob("Beethoven_WoO80_thema_8bars_*"))
    score = tmp_path / "mirror" / "percepiano" / "score_midi" / "Beethoven_WoO80_thema_8bars_Score_1.mid"
    run([str(Path(sys.executable).parent / "pianoeval"), "assess", str(perf), "--score", str(score),
         "--out", str(tmp_path / "assess"), "--model", str(repo / "models" / "release")], repo, env)
    report = json.loads((tmp_path / "assess" / f"{perf.stem}.json").read_text())
    assert report["variant"] == "with_score" and len(report["dimensions"]) == 19

    assert "Data and pipelines are up to date" in run(["dvc", "repro"], repo, env)

    # DVC sees the data: one edited mirror file makes exactly its ingest stage stale
    first = sorted((tmp_path / "mirror" / "giantmidi" / "ground_truth").glob("*.mid"))[0]
    original = first.read_bytes()
    first.write_bytes(original + b"\0")
    status = lambda: json.loads(subprocess.run(  # noqa: E731
        ["dvc", "status", "--json"], cwd=repo, env=env, capture_output=True, text=True, check=True).stdout)
    assert set(status()) == {"ingest@giantmidi"}
    first.write_bytes(original)
    assert status() == {}

    # ... and the copies the stages read: those stages depend on the sha256 that ingest's
    # manifests and render's index list for every file, so each file must be listed with its
    # hash, and an edited copy makes the stage that wrote it stale (its rerun restores it)
    for folder, listing in [(repo / "data" / "raw" / s, "manifest.csv") for s in
                            ("percepiano", "maestro", "giantmidi")] + [(repo / "data" / "audio",
                                                                        "index.csv")]:
        listed = pd.read_csv(folder / listing, keep_default_na=False)
        listed = listed[listed["status"] == "ok"]
        on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
        assert set(listed["file"]) == on_disk - {"manifest.csv", "index.csv", "config.json"}
        assert all(sha256_file(folder / f) == h for f, h in zip(listed["file"], listed["sha256"]))
    copy = next((repo / "data" / "raw" / "percepiano" / "midi").glob("*.mid"))
    original = copy.read_bytes()
    copy.write_bytes(original + b"\0")
    assert set(status()) == {"ingest@percepiano"}
    copy.write_bytes(original)
    assert status() == {}

    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "baseline run"], repo, env)
    params["baselines"]["ridge"]["alphas"] = [1000.0]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run(["dvc", "repro"], repo, env)
    ran = set(re.findall(r"Running stage '([^']+)'", out))
    assert ran == {"baselines", "evaluate", "ablation", "release"}, out
    assert "ridge" in run(["dvc", "metrics", "diff"], repo, env)
