"""Pre-training on a GPU machine -> the GPU rows of benchmarks/pretrain.md (issue 7).

Runs the stage script (stages/pretrain_midi.py, the same code as `dvc repro`) with params
overrides: a 150-step probe of the `gpu_small` profile (throughput), 40 steps of the `gpu`
profile (the BERT-base shape; throughput), 300 steps of the CPU default (128-token sequences, no
pre-training dropout) on the GPU, then `gpu_small` with its steps sized to --budget seconds at
the probe's rate (``--budget 0``: the probes only). Each run's summary (the format of
metrics/pretrain.json) and the long run's encoder, moved to the CPU, land in --out; fine-tune
that encoder with
``stages/finetune_midi.py midibert_pretrained --encoders OUT/encoder_gpu_small.pt --predictions ...``.

    python benchmarks/pretrain_gpu.py --tokens data/tokens --out /tmp/gpu --budget 270
"""
import argparse
import copy
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]


def run_stage(name: str, section: dict, base: dict, tokens: Path, out: Path):
    """Train with ``pretrain_midi: section``; (steps, seconds, tokens/s) of its loop, or None."""
    params = {**base, "pretrain_midi": section}
    path, models = out / f"params_{name}.yaml", Path(f"/tmp/pretrain_gpu_{name}")
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.rmtree(models, ignore_errors=True)
    start = time.time()
    done = subprocess.run([sys.executable, str(ROOT / "stages" / "pretrain_midi.py"), "--params", str(path),
                           "--tokens", str(tokens), "--models", str(models),
                           "--records", str(out / f"logs_{name}"), "--metrics", str(out / f"{name}.json")],
                          capture_output=True, text=True)
    text = done.stdout + done.stderr
    print(f"== {name}: exit {done.returncode}, {time.time() - start:.0f} s", flush=True)
    print("\n".join(line for line in text.splitlines() if "pretrain_midi " in line), flush=True)
    if done.returncode:
        print(text[-4000:], flush=True)
        return None, models
    m = re.search(r"encoder seed \d+: (\d+) steps in this run .* in (\d+) s: (\d+) tokens/s", text)
    return (int(m.group(1)), float(m.group(2)), float(m.group(3))), models


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", default=str(ROOT / "data" / "tokens"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--budget", type=float, default=270.0, help="seconds for the long run's loop")
    args = ap.parse_args()
    out, tokens = Path(args.out), Path(args.tokens)
    out.mkdir(parents=True, exist_ok=True)
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    # one encoder per run: the throughput probes, then one long run
    section = base["pretrain_midi"] | {"n_encoders": 1}
    probe = copy.deepcopy(section) | {"profile": "gpu_small"}
    probe["profiles"]["gpu_small"]["train"]["steps"] = 150
    rate, _ = run_stage("gpu_small_probe", probe, base, tokens, out)
    big = copy.deepcopy(section) | {"profile": "gpu"}
    big["profiles"]["gpu"]["train"]["steps"] = 40
    run_stage("gpu_profile_probe", big, base, tokens, out)
    default = copy.deepcopy(section) | {"device": "cuda", "num_threads": 2}
    default["train"] |= {"steps": 300, "loader_workers": 14}
    run_stage("cpu_default_probe", default, base, tokens, out)
    if args.budget <= 0:
        return
    if rate is None:
        sys.exit("the probe failed: no long run")
    long = copy.deepcopy(section) | {"profile": "gpu_small"}
    long["profiles"]["gpu_small"]["train"]["steps"] = int(rate[0] / rate[1] * args.budget) // 100 * 100
    info, models = run_stage("gpu_small_long", long, base, tokens, out)
    if info:
        encoder = torch.load(models / "encoders" / "seed0.pt", weights_only=False, map_location="cpu")
        torch.save(encoder, out / "encoder_gpu_small.pt")


if __name__ == "__main__":
    main()
