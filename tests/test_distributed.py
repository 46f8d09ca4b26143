"""Under torchrun, 2 CPU processes (gloo): pre-training (DistributedDataParallel) follows the
1-process run of the same global batch; fine-tuning shares its fold models out and predicts
exactly what one process predicts."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

import ddp_worker
from pianoeval.distributed import Rank, init_distributed

# Tolerances: each process runs the encoder on its 3 rows instead of all 6, and DDP sums the
# gradients in another order, so losses and weights agree to float32 rounding, not bit for bit.
LOSS_TOL = 1e-5
WEIGHT_TOL = 1e-5


def test_rows_split_a_batch_into_contiguous_shares_that_cover_it_once():
    shares = [Rank(i, 3).rows(8) for i in range(3)]
    assert shares == [slice(0, 3), slice(3, 6), slice(6, 8)]
    assert Rank().rows(5) == slice(0, 5)
    with pytest.raises(ValueError, match="2 rows cannot be shared by 3 processes"):
        Rank(0, 3).rows(2)


def test_without_torchrun_the_process_is_alone(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert init_distributed("cpu") == (Rank(0, 1), "cpu")


def _torchrun_two(what: str, out: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(ddp_worker.__file__).parent),
                                          os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                    "--nproc-per-node", "2", ddp_worker.__file__, what, str(out)],
                   check=True, env=env, timeout=300)


def test_two_gloo_processes_follow_the_one_process_loss_curve(tmp_path, torch_one_thread):
    one, ref_weights = ddp_worker.run_pretrain(tmp_path / "one")
    _torchrun_two("pretrain", tmp_path / "two")
    two = json.loads((tmp_path / "two" / "records.json").read_text())
    assert two["world"] == 2
    assert [r["step"] for r in two["records"]] == list(range(ddp_worker.STEPS))
    assert [r["lr"] for r in two["records"]] == [r["lr"] for r in one]
    losses = torch.tensor([[a["loss"], b["loss"]] for a, b in zip(one, two["records"])])
    assert torch.allclose(losses[:, 1], losses[:, 0], rtol=0, atol=LOSS_TOL), losses
    assert losses[-1, 0] < losses[0, 0]  # it learnt something, so the match is not trivial
    weights = torch.load(tmp_path / "two" / "weights.pt")
    for name, w in ref_weights.items():
        assert torch.allclose(weights[name], w, rtol=0, atol=WEIGHT_TOL), name


def test_two_processes_share_the_fold_models_and_predict_as_one(tmp_path, torch_one_thread):
    one = ddp_worker.run_finetune()
    _torchrun_two("finetune", tmp_path / "two")
    assert sorted(p.stem for p in (tmp_path / "two").glob("*.csv")) == sorted(one)
    for protocol, frame in one.items():
        two = pd.read_csv(tmp_path / "two" / f"{protocol}.csv")
        pd.testing.assert_frame_equal(two, pd.read_csv(_csv(frame, tmp_path / f"{protocol}.csv")),
                                      check_exact=True)


def _csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)  # the same round trip as the 2-process run's frames
    return path
