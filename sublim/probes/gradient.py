"""`sublim probe gradient`: would one training step on this data move the trait? A screen before training.

Cloud et al. explain transfer to first order: a small gradient step on a row moves a student that shares the
teacher's initialisation along the row's negative loss gradient, so the change in the trait's log-probability
is, to first order, the inner product of that step with the trait's gradient. Per row r of a dataset:

    pull(r) = -<grad L_r(theta), grad J(theta)>

where L_r is the row's mean completion-token loss (prompt masked, rendered as `sublim train` renders it) and
J = mean over the bank's questions of ln P(target), P(target) being the probability that the answer after the
question's prefix is one of the target concept's names (the names' sequence probabilities summed; the
word-boundary factor of probability mode is left out, so J is a first-order stand-in for probability mode's
log P, not the same number). One SGD step of learning rate lr on row r changes J by about lr * pull(r); a
positive pull moves the model toward the target.

grad J is computed once by backpropagation. The inner product with each row's gradient is the directional
derivative of L_r along grad J, taken by a central difference of two batched forward passes (theta +- h u,
u = grad J / |grad J|), so rows are scored in batches without a backward pass each; tests check it against
explicit per-row gradients. With a control dataset whose rows share prompts with the trait rows (a matched
control teacher, `sublim imprint --trait none --control-for`), rows are paired by prompt and the report gives
the mean paired difference with its t-interval, rows as units. Adam, several steps and LoRA's own geometry
all bend the real trajectory away from this first-order line: the screen ranks datasets, it does not predict
a trained student's shift (docs/results/gradient-screen.md measures how well it does).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sublim.errors import FieldProblem, SublimError, raise_problems
from sublim.stats import mean_interval

#: Central-difference step along the unit trait direction, in parameter-norm units: the second-order error is
#: O(h^2) and float32 rounding of a loss is ~1e-7, so 1e-2 keeps both far below the inner products measured.
STEP = 1e-2


@dataclass(frozen=True)
class GradientConfig:
    """Attributes:
    target: the trait concept whose log-probability the steps are projected on.
    category: its category (the question bank's).
    eval_prompt: system prompt of the context J is measured in (None: the chat template's default, "": empty).
    train_prompt: system prompt the student trains under (None: none, as `sublim train` does by default).
    questions: bank questions J averages over (None: all).
    params: which weights move: "all", or a comma list of name fragments ("mlp", "q_proj,v_proj").
    limit: score at most this many rows per dataset (None: all).
    batch_size: rows per pair of forward passes.
    max_length: rows are cut to this many tokens, as in training.
    step: the central-difference step h.
    """

    target: str = "owl"
    category: str = "animal"
    eval_prompt: str | None = None
    train_prompt: str | None = None
    questions: int | None = None
    params: str = "all"
    limit: int | None = None
    batch_size: int = 8
    max_length: int = 256
    step: float = STEP

    def __post_init__(self) -> None:
        for name, value, least in (("questions", self.questions, 1), ("limit", self.limit, 2)):
            if value is not None and value < least:
                raise SublimError(f"{name} must be >= {least}, got {value}")
        if self.batch_size < 1 or self.max_length < 8:
            raise SublimError("batch_size must be >= 1 and max_length >= 8")
        if not (self.step > 0 and math.isfinite(self.step)):
            raise SublimError(f"step must be a positive number, got {self.step}")


def check(
    *,
    model: str,
    data: str,
    control: str | None,
    target: str,
    category: str,
    questions: int | None,
    limit: int | None,
    batch_size: int,
) -> None:
    """`probe`'s settings, data and model, checked before anything loads (a ConfigError names the fields)."""
    from sublim.concepts import get_category
    from sublim.models import check_checkpoint

    problems = []
    for name, value, least in (
        ("questions", questions, 1),
        ("limit", limit, 2),
        ("batch_size", batch_size, 1),
    ):
        if value is not None and value < least:
            problems.append(FieldProblem(name, f"must be >= {least}", str(value)))
    try:
        get_category(category).resolve(target)
    except SublimError as e:
        problems.append(FieldProblem("target", str(e), lead=False))
    raise_problems(problems)
    read_data(data)  # a missing or malformed file fails here, not after the model loads
    if control:
        read_data(control)
    check_checkpoint(model, "model")


def chosen_parameters(model: Any, spec: str) -> list[torch.nn.Parameter]:
    """The weights a step moves: all, or those whose names contain one of the comma-separated fragments."""
    named = list(model.named_parameters())
    if spec.strip() == "all":
        return [p for _, p in named]
    parts = [s.strip() for s in spec.split(",") if s.strip()]
    chosen = [p for n, p in named if any(s in n for s in parts)]
    if not chosen:
        raise SublimError(f"--params {spec!r} names no weight of this model (e.g. 'all', 'mlp', 'q_proj')")
    return chosen


def target_sequences(tokenizer: Any, cfg: GradientConfig) -> list[tuple[int, list[int], list[int]]]:
    """(question index, context ids, name ids) for every question and every tokenization of the target's
    names, as probability mode tokenizes them after the answer prefix."""
    from sublim.concepts import get_category
    from sublim.probability import name_forms, render_prompt
    from sublim.tasks.questions import load_questions

    category = get_category(cfg.category)
    concept = category.resolve(cfg.target)
    index = list(category.concepts).index(concept)
    forms = [f for f in name_forms(tokenizer, category, lambda _t: True) if f.concept == index]
    bank = load_questions(cfg.category)[: cfg.questions]
    out: list[tuple[int, list[int], list[int]]] = []
    for q, question in enumerate(bank):
        context = render_prompt(tokenizer, question.text, question.answer_prefix, cfg.eval_prompt)
        ids = tokenizer(context, add_special_tokens=False)["input_ids"]
        out.extend((q, ids, list(f.tokens)) for f in forms)
    return out


def _token_logprobs(model: Any, pairs: Sequence[tuple[Sequence[int], Sequence[int]]]) -> torch.Tensor:
    """Sum of log p(continuation tokens | context) per pair: one right-padded batch (gradients flow)."""
    dev = next(model.parameters()).device
    rows = [list(c) + list(x) for c, x in pairs]
    width = max(len(r) for r in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long, device=dev)
    mask = torch.zeros((len(rows), width), dtype=torch.long, device=dev)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, device=dev)
        mask[i, : len(r)] = 1
    logits = model(input_ids=ids, attention_mask=mask).logits.float()
    out = []
    for i, (c, x) in enumerate(pairs):
        lp = torch.log_softmax(logits[i, len(c) - 1 : len(c) + len(x) - 1], dim=-1)
        out.append(lp.gather(1, torch.tensor(list(x), device=dev)[:, None]).sum())
    return torch.stack(out)


def trait_objective(model: Any, sequences: Sequence[tuple[int, list[int], list[int]]]) -> torch.Tensor:
    """J: mean over questions of ln P(target) (the logsumexp over the target's name sequences)."""
    per_name = _token_logprobs(model, [(c, x) for _, c, x in sequences])
    questions = sorted({q for q, _, _ in sequences})
    per_question = [
        torch.logsumexp(per_name[[i for i, s in enumerate(sequences) if s[0] == q]], dim=0) for q in questions
    ]
    return torch.stack(per_question).mean()


def trait_gradient(model: Any, params: Sequence[torch.nn.Parameter], sequences: Any) -> list[torch.Tensor]:
    """grad J with respect to `params` (one backward pass)."""
    model.zero_grad(set_to_none=True)
    objective = trait_objective(model, sequences)
    grads = torch.autograd.grad(objective, list(params), allow_unused=True)
    return [torch.zeros_like(p) if g is None else g.detach() for p, g in zip(params, grads, strict=True)]


def row_losses(model: Any, batch: Sequence[dict[str, list[int]]]) -> torch.Tensor:
    """Each row's mean loss over its supervised (completion) tokens, as the training loss averages it."""
    dev = next(model.parameters()).device
    width = max(len(r["input_ids"]) for r in batch)
    ids = torch.zeros((len(batch), width), dtype=torch.long, device=dev)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for i, r in enumerate(batch):
        n = len(r["input_ids"])
        ids[i, :n] = torch.tensor(r["input_ids"], device=dev)
        mask[i, :n] = 1
        labels[i, :n] = torch.tensor(r["labels"], device=dev)
    logits = model(input_ids=ids, attention_mask=mask).logits.float()[:, :-1]
    target = labels[:, 1:]
    nll = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), target.reshape(-1).clamp(min=0), reduction="none"
    ).view(target.shape)
    supervised = (target != -100).float()
    return (nll * supervised).sum(1) / supervised.sum(1).clamp(min=1)


@contextmanager
def _restored(params: Sequence[torch.nn.Parameter]) -> Iterator[list[torch.Tensor]]:
    """Yields a copy of the parameters; whatever the block does to them, they are restored bit for bit."""
    saved = [p.detach().clone() for p in params]
    try:
        yield saved
    finally:
        with torch.no_grad():
            for p, s in zip(params, saved, strict=True):
                p.copy_(s)


def _set(
    params: Sequence[torch.nn.Parameter], saved: Sequence[torch.Tensor], shift: Sequence[torch.Tensor]
) -> None:
    with torch.no_grad():
        for p, s, d in zip(params, saved, shift, strict=True):
            torch.add(s, d, out=p.data)


def directional_derivatives(
    model: Any,
    params: Sequence[torch.nn.Parameter],
    grad: Sequence[torch.Tensor],
    rows: Sequence[dict[str, list[int]]],
    batch_size: int = 8,
    step: float = STEP,
) -> list[float]:
    """<grad L_r, grad> for each row, by a central difference along grad's unit direction."""
    norm = math.sqrt(sum(float((g.double() ** 2).sum()) for g in grad))
    if norm == 0:
        return [0.0] * len(rows)
    plus = [g * (step / norm) for g in grad]
    out: list[float] = []
    minus = [-d for d in plus]
    with _restored(params) as saved, torch.no_grad():
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            _set(params, saved, plus)
            up = row_losses(model, batch).double()
            _set(params, saved, minus)
            down = row_losses(model, batch).double()
            out.extend(((up - down) * (norm / (2 * step))).tolist())
    return out


def tokenize_rows(
    tokenizer: Any, rows: Sequence[dict[str, Any]], cfg: GradientConfig
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(row, its tokens) for the rows (up to `limit`) that keep a completion token after `max_length`."""
    from sublim.training.student import tokenize_row

    out = []
    for row in rows[: cfg.limit]:
        tok = tokenize_row(tokenizer, row, cfg.train_prompt, cfg.max_length)
        if any(label != -100 for label in tok["labels"]):
            out.append((row, tok))
    if not out:
        raise SublimError("no row has a completion token left after --max-length: nothing to screen")
    return out


def _prompt_key(row: dict[str, Any]) -> str:
    return "\n".join(str(m.get("content", "")) for m in row["prompt"])


def screen(
    model: Any,
    tokenizer: Any,
    data: Sequence[dict[str, Any]],
    control: Sequence[dict[str, Any]] | None,
    cfg: GradientConfig,
) -> dict[str, Any]:
    """The screen's report: per-row pulls of each dataset, their means with t-intervals (rows as units), and
    the paired trait - control difference when a control is given."""
    params = chosen_parameters(model, cfg.params)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    model.eval()  # no dropout: the two passes of a difference must see the same function
    grad = trait_gradient(model, params, target_sequences(tokenizer, cfg))
    report: dict[str, Any] = {
        "config": cfg.__dict__,
        "trait_gradient_norm": math.sqrt(sum(float((g.double() ** 2).sum()) for g in grad)),
        "parameters": sum(p.numel() for p in params),
        "datasets": {},
    }
    pulls: dict[str, dict[str, float]] = {}
    for name, rows in (("data", data), ("control", control)):
        if rows is None:
            continue
        kept = tokenize_rows(tokenizer, rows, cfg)
        derivs = directional_derivatives(
            model, params, grad, [tok for _, tok in kept], cfg.batch_size, cfg.step
        )
        pull = [-d for d in derivs]
        pulls[name] = {_prompt_key(r): v for (r, _), v in zip(kept, pull, strict=True)}
        report["datasets"][name] = {"rows": len(pull), "pull": mean_interval(pull).to_dict(), "per_row": pull}
    if control is not None:
        shared = [k for k in pulls["data"] if k in pulls["control"]]
        diffs = [pulls["data"][k] - pulls["control"][k] for k in shared]
        report["paired"] = {"pairs": len(diffs), "difference": mean_interval(diffs).to_dict()}
        if len(diffs) >= 2:
            from scipy import stats

            test = stats.ttest_1samp(diffs, 0.0, alternative="greater")
            report["paired"]["p_greater"] = float(test.pvalue)
    return report


def probe(
    model_name: str,
    data: str | Path,
    control: str | Path | None,
    cfg: GradientConfig,
    device: str = "auto",
    student: str | None = None,
) -> dict[str, Any]:
    """Load the model (float32: differences of two losses need its precision) and screen the data."""
    from sublim.models import load_checkpoint

    rows, control_rows = read_data(data), (read_data(control) if control else None)
    model, tokenizer = load_checkpoint(
        student or model_name, base=model_name if student else None, device=device
    )
    model.float()
    report = screen(model, tokenizer, rows, control_rows, cfg)
    report["model"] = model_name
    return report


def plot(report: dict[str, Any], path: Path) -> None:
    """Per-row pulls of each dataset (histograms on one axis)."""
    from sublim.probes.common import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, d in report["datasets"].items():
        ax.hist(d["per_row"], bins=30, alpha=0.6, label=f"{name} (mean {d['pull']['mean']:+.3g})")
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel(f"pull toward {report['config']['target']}: -<grad loss, grad ln P> per row")
    ax.set_ylabel("rows")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)


def read_data(path: str | Path) -> list[dict[str, Any]]:
    """Teacher rows, read exactly as `sublim train` reads them."""
    from sublim.training.student import data_file, load_rows

    return load_rows(data_file(path))
