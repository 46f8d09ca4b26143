"""DVC stage `ablation`: metrics/ablation.md, the audio+MIDI models' ablation table per
protocol (from metrics/eval.json, metrics/comparisons.json and metrics/train_fusion/<model>.json)."""
import argparse
import json
from pathlib import Path

from pianoeval.evaluate.ablation import ablation_markdown
from pianoeval.logs import setup_logging
from pianoeval.params import load_params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--eval", default="metrics/eval.json")
    parser.add_argument("--comparisons", default="metrics/comparisons.json")
    parser.add_argument("--configs", default="metrics/train_fusion")
    parser.add_argument("--out", default="metrics/ablation.md")
    args = parser.parse_args()
    log = setup_logging("ablation")
    eval_dict = json.loads(Path(args.eval).read_text())
    configs = {}
    for model in load_params("train_fusion", args.params)["models"]:
        path = Path(args.configs) / f"{model}.json"
        if path.exists():  # a model not trained yet is left out of the table
            configs[model] = json.loads(path.read_text())["config"]
    evaluate = load_params("evaluate", args.params)
    comparisons = json.loads(Path(args.comparisons).read_text())
    Path(args.out).write_text(ablation_markdown(eval_dict, configs, evaluate["protocols"],
                                                comparisons, evaluate["default_model"]))
    log.info("wrote %s (%d models)", args.out, len(configs))


if __name__ == "__main__":
    main()
