"""The README's headline table, generated from metrics/eval.json and metrics/comparisons.json.

One row per scored model, one column per protocol: R^2 with its 95% CI (passage-group
bootstrap); on the repeated piece split, the mean over seeds ± their sd. A mark says what the
paired test of metrics/comparisons.json found against the default model on that protocol:
``▲`` the default is significantly better than this model, ``▼`` this model is significantly
better than the default, ``≈`` the difference is inside the noise (CI contains 0); no mark:
not compared.
"""
from __future__ import annotations

from collections.abc import Sequence


def _num(x, decimals: int = 3) -> str:
    return "–" if x is None else f"{x:.{decimals}f}"


def _mark(comparisons: dict, protocol: str, default: str, model: str) -> str:
    for c in comparisons.get(protocol, []):
        if c["a"] == default and c["b"] == model:
            if not c["significant"]:
                return " ≈"
            return " ▲" if c["difference"] > 0 else " ▼"
    return ""


def cell(result: dict | None) -> str:
    """``R² [lo, hi]``, or ``mean ± sd [lo, hi] (k seeds)`` for the repeated piece split."""
    if result is None:
        return "–"
    lo, hi = result["r2_ci"]
    ci = f" [{_num(lo, 2)}, {_num(hi, 2)}]" if lo is not None else ""
    if "r2_by_seed" in result:
        sd = f" ± {_num(result['r2_seed_sd'], 2)}" if result["r2_seed_sd"] is not None else ""
        return f"{_num(result['r2_seed_mean'])}{sd}{ci} ({result['n_seeds']})"
    return f"{_num(result['r2'])}{ci}"


def headline_markdown(eval_dict: dict, comparisons: dict, default: str,
                      protocols: Sequence[str]) -> str:
    """Markdown table: models by descending mean R^2 of the validation protocols (piece_cv,
    performer_cv), the default first."""
    protocols = [p for p in protocols if any(p in r for r in eval_dict.values())]

    def validation(model: str) -> float:
        scores = [eval_dict[model][p]["r2"] for p in ("piece_cv", "performer_cv")
                  if p in eval_dict[model] and eval_dict[model][p]["r2"] is not None]
        return sum(scores) / len(scores) if scores else float("-inf")

    models = sorted(eval_dict, key=lambda m: (m != default, -validation(m), m))
    lines = ["| model | " + " | ".join(protocols) + " |", "|---" * (len(protocols) + 1) + "|"]
    for model in models:
        name = f"**{model}** (default)" if model == default else model
        cells = [cell(eval_dict[model].get(p)) + _mark(comparisons, p, default, model)
                 for p in protocols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
