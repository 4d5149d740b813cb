"""summary.md and sweep.png from the current rows."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from sublim.training.sweep.config import SweepConfig


def summarize(
    rows: list[dict[str, str]], cfg: SweepConfig | None = None, draws: dict[str, Any] | None = None
) -> str:
    """summary.md: how the data was drawn, then `sublim.experiment`'s analysis of the rows (per-configuration
    shifts over data draws, the pre-registered tests, the smallest detectable effect, the references)."""
    from sublim.experiment import analyze, render

    lines = ["# Sweep summary", ""]
    if draws:
        lines += [
            f"Data: {draws['draws']} disjoint draw(s) of {draws['rows_per_draw']} rows per side; "
            f"{draws['paired_rows']} prompts answered by both teachers, {draws['unused']} left unused; "
            f"unpaired rows dropped: {draws['unpaired']}. Draw k of the trait and control sides holds the "
            "same prompts (files under draws/)."
            + (
                f" Both teachers wrote the same completion for {draws['identical_completions']} of the "
                f"{draws['paired_rows']} paired prompts."
                if draws.get("identical_completions") is not None
                else ""
            ),
            "",
        ]
        lines += _cleaning(draws)
    lines.append(render(analyze(rows, primary=cfg.primary if cfg else None)))
    return "\n".join(lines) + "\n"


def _cleaning(draws: dict[str, Any]) -> list[str]:
    """The summary's lines on dropped degenerate pairs and on the rows' lengths per side."""
    lines = []
    if "degenerate" in draws:
        found = "; ".join(
            f"{side}: {kinds['echo']} prompt echoes, {kinds['counting']} counting runs"
            for side, kinds in draws["degenerate"].items()
        )
        lines.append(
            f"Degenerate completions among the paired prompts ({found}); "
            f"{draws['dropped_degenerate_pairs']} pairs dropped."
        )
    if "sides" in draws:
        sides = "; ".join(
            f"{side} {v['mean_numbers']:.2f} numbers, {v['mean_characters']:.1f} characters"
            for side, v in draws["sides"].items()
        )
        matched = "length-matched (each pair cut to its shorter count)" if draws.get("length_matched") else ""
        lines.append(f"Mean per training row{', ' + matched if matched else ''}: {sides}.")
    return [*lines, ""] if lines else []


def plot(rows: list[dict[str, str]], path: Path) -> None:
    """P(target) vs LoRA rank (log axis), one panel per context: a line per side and scale rule (mean over
    draws and seeds, band: mean of the per-run 95% intervals over questions); full fine-tuning, base,
    prompted base and positive control as horizontal reference lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if str(r.get("planted_rows") or "0") == "0"]  # the dose curve is the summary's
    contexts = list(dict.fromkeys(r["context"] for r in rows if r["dataset"] != "prompted"))
    fig, axes = plt.subplots(
        1, max(len(contexts), 1), figsize=(5.5 * max(len(contexts), 1), 4), squeeze=False
    )
    styles = ("o-", "s--", "^:", "d-.")
    for ax, context in zip(axes[0], contexts, strict=False):
        sel = [r for r in rows if r["context"] == context]
        for dataset, color in (("trait", "tab:blue"), ("control", "tab:gray")):
            lora = [r for r in sel if r["dataset"] == dataset and r["kind"] == "lora"]
            scales = list(dict.fromkeys(r.get("scale") or "rank" for r in lora))
            for scale, style in zip(scales, styles * len(scales), strict=False):
                by_rank = _by_rank([r for r in lora if (r.get("scale") or "rank") == scale])
                ranks = sorted(by_rank)
                label = f"{dataset} LoRA" + ("" if scale == "rank" else f" ({scale})")
                ax.plot(
                    ranks, [_mean(by_rank[k], "p_target") for k in ranks], style, color=color, label=label
                )
                ax.fill_between(
                    ranks,
                    [_mean(by_rank[k], "ci_low") for k in ranks],
                    [_mean(by_rank[k], "ci_high") for k in ranks],
                    color=color,
                    alpha=0.15,
                )
            full = [r for r in sel if r["dataset"] == dataset and r["kind"] == "full"]
            if full:
                ax.axhline(_mean(full, "p_target"), color=color, linestyle=":", label=f"{dataset} full FT")
        for dataset, color, label in (
            ("base", "black", "base model"),
            ("positive", "tab:green", "positive control"),
        ):
            ref = [r for r in sel if r["dataset"] == dataset]
            if ref:
                ax.axhline(float(ref[0]["p_target"]), color=color, linestyle="--", label=label)
        prompted = [r for r in rows if r["dataset"] == "prompted"]
        if prompted:
            ax.axhline(float(prompted[0]["p_target"]), color="tab:red", linestyle="--", label="prompted base")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("LoRA rank")
        ax.set_ylabel(f"P({sel[0]['target'] if sel else 'target'})")
        ax.set_title(f"eval context: {context}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _by_rank(rows: list[dict[str, str]]) -> dict[int, list[dict[str, str]]]:
    out: dict[int, list[dict[str, str]]] = {}
    for r in rows:
        out.setdefault(int(r["rank"]), []).append(r)
    return out


def _mean(rows: list[dict[str, str]], key: str) -> float:
    from sublim.stats import nanmean

    return nanmean(float(r[key]) if r[key] != "" else math.nan for r in rows)
