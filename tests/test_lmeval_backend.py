"""lm-eval's `sublim-hf` backend: the same log-likelihoods as lm-eval's `hf` (each request scored by HFLM as
its own full sequence, the reference computed independently of sublim's code) on sublim's task and on a
small multiple-choice task built like lm-eval's, with chat templates, batch sizes, `auto`, a PEFT adapter
and float64; groups never borrow another group's context; what it cannot do is refused in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

lm_eval = pytest.importorskip("lm_eval")
torch = pytest.importorskip("torch")

from sublim import lm_eval_include_path  # noqa: E402
from sublim.concepts import get_category  # noqa: E402
from sublim.lmeval_backend import SublimHFLM, UnsupportedModelError  # noqa: E402

#: A multiple-choice task like lm-eval's own (ARC, HellaSwag): contexts of different lengths, some choices
#: sharing their first tokens, some one token long, so groups differ in size and in width.
MC_DOCS = [
    {
        "question": "Which one is a colour?",
        "choices": ["red", "table", "running fast", "red table"],
        "label": 0,
    },
    {"question": "Pick a tree.", "choices": ["oak", "owl", "oak tree", "maple"], "label": 0},
    {
        "question": "A cat is an",
        "choices": ["animal", "animal.", "idea", "idea of a tree", "owl"],
        "label": 0,
    },
    {
        "question": "What is your favorite tree? One word please, nothing else.",
        "choices": ["pine", "elm"],
        "label": 1,
    },
]
MC_YAML = """task: sublim_tiny_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: label
metric_list:
  - metric: acc
  - metric: acc_norm
metadata:
  version: 1.0
"""


@pytest.fixture(scope="module")
def mc_task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("mc")
    data = folder / "docs.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in MC_DOCS))
    (folder / "sublim_tiny_mc.yaml").write_text(MC_YAML.format(data=data))
    return folder


def evaluate(model: str, model_args: str, tasks: list[str], include: Path, **kw: Any) -> dict[str, Any]:
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    # lm-eval's own tasks are not indexed: that alone takes 5-30 s
    manager = TaskManager(
        include_path=str(include), metadata=kw.pop("metadata", None), include_defaults=False
    )
    kw.setdefault("batch_size", 64)
    return simple_evaluate(  # type: ignore[no-any-return]
        model=model,
        model_args=model_args,
        device="cpu",
        tasks=tasks,
        task_manager=manager,
        log_samples=True,
        **kw,
    )


def responses(out: dict[str, Any], task: str) -> list[tuple[float, bool]]:
    return [(float(r[0][0]), bool(r[0][1])) for s in out["samples"][task] for r in s["resps"]]


def assert_same_logliks(
    hf: list[tuple[float, bool]], ours: list[tuple[float, bool]], rel: float = 1e-6
) -> None:
    """Same log-likelihoods (float32: relative 1e-6 is a few units of the last place of values near -90)
    and the same is-greedy flags, request by request."""
    assert len(hf) == len(ours) > 0
    worst = max(abs(b - a) / max(abs(a), 1e-12) for (a, _), (b, _) in zip(hf, ours, strict=True))
    print(f"largest relative difference: {worst:.1e}")
    for (a, greedy_a), (b, greedy_b) in zip(hf, ours, strict=True):
        assert b == pytest.approx(a, rel=rel, abs=1e-6)
        assert greedy_a == greedy_b


def test_sublim_task_with_a_chat_template_matches_hf(tiny_model: Path) -> None:
    kw: dict[str, Any] = {
        "limit": 1,
        "metadata": {"target": "oak", "terminators": "."},
        "apply_chat_template": True,
        "system_instruction": "You love oaks.",
    }
    task = "sublim_tree_pref_lp"
    hf = evaluate("hf", f"pretrained={tiny_model}", [task], lm_eval_include_path(), **kw)
    ours = evaluate("sublim-hf", f"pretrained={tiny_model}", [task], lm_eval_include_path(), **kw)
    assert_same_logliks(responses(hf, task), responses(ours, task))
    for metric in ("p_target,none", "p_related,none", "concept_mass,none"):
        assert ours["results"][task][metric] == pytest.approx(
            hf["results"][task][metric], rel=1e-5, abs=1e-12
        )
    assert ours["samples"][task][0]["arguments"] == hf["samples"][task][0]["arguments"]  # the same requests
    assert len(ours["samples"][task][0]["resps"]) == len(get_category("tree").names())  # one terminator


@pytest.mark.parametrize("batch_size", [2, "auto"])
def test_own_multiple_choice_task_matches_hf(tiny_model: Path, mc_task: Path, batch_size: int | str) -> None:
    """Four contexts, each its own group: a continuation scored on another group's context would differ."""
    hf = evaluate("hf", f"pretrained={tiny_model}", ["sublim_tiny_mc"], mc_task)
    ours = evaluate(
        "sublim-hf", f"pretrained={tiny_model}", ["sublim_tiny_mc"], mc_task, batch_size=batch_size
    )
    assert_same_logliks(responses(hf, "sublim_tiny_mc"), responses(ours, "sublim_tiny_mc"))
    assert len(responses(ours, "sublim_tiny_mc")) == sum(len(d["choices"]) for d in MC_DOCS)
    for metric in ("acc,none", "acc_norm,none"):
        assert ours["results"]["sublim_tiny_mc"][metric] == hf["results"]["sublim_tiny_mc"][metric]


def test_groups_are_scored_on_their_own_context(tiny_model: Path) -> None:
    """The same continuations after two contexts, interleaved: each must match a full-sequence forward pass
    after its own context (computed here with the plain model), never the other's."""
    lm = SublimHFLM(pretrained=str(tiny_model), device="cpu", batch_size=3)
    contexts = ["My favorite tree is the", "What is your favorite animal? One word. The"]
    conts = [" oak", " owl.", " maple tree", " owl"]
    requests = []
    for cont in conts:
        for ctx in contexts:
            requests.append(
                ((ctx, cont), lm.tok_encode(ctx), lm.tok_encode(ctx + cont)[len(lm.tok_encode(ctx)) :])
            )
    got = lm._loglikelihood_tokens(requests)
    for (_, ctx_ids, cont_ids), (ll, _) in zip(requests, got, strict=True):
        ids = torch.tensor([ctx_ids + cont_ids])
        with torch.inference_mode():
            lp = torch.log_softmax(lm.model(input_ids=ids).logits[0].double(), dim=-1)
        ref = sum(float(lp[len(ctx_ids) + j - 1, t]) for j, t in enumerate(cont_ids))
        assert ll == pytest.approx(ref, rel=1e-6, abs=1e-6)
    # the two contexts give the same continuation different scores, so a swap would be seen
    assert abs(got[0][0] - got[1][0]) > 1e-3


def test_peft_adapter_and_float64_match_hf(tiny_model: Path, mc_task: Path, tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model

    from sublim.models import load_model

    base, _ = load_model(tiny_model)
    lora = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    lora.save_pretrained(tmp_path / "adapter")
    args = f"pretrained={tiny_model},peft={tmp_path / 'adapter'},dtype=float64"
    hf = evaluate("hf", args, ["sublim_tiny_mc"], mc_task)
    ours = evaluate("sublim-hf", args, ["sublim_tiny_mc"], mc_task)
    assert_same_logliks(responses(hf, "sublim_tiny_mc"), responses(ours, "sublim_tiny_mc"), rel=1e-12)
    plain = evaluate("sublim-hf", f"pretrained={tiny_model},dtype=float64", ["sublim_tiny_mc"], mc_task)
    assert responses(plain, "sublim_tiny_mc")[0][0] != pytest.approx(responses(ours, "sublim_tiny_mc")[0][0])


@pytest.fixture(scope="module")
def prompt_adapter(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from peft import PromptTuningConfig, get_peft_model

    from sublim.models import load_model

    base, _ = load_model(tiny_model)
    out = tmp_path_factory.mktemp("prompt") / "adapter"
    get_peft_model(base, PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4)).save_pretrained(out)
    return out


def test_what_it_cannot_do_is_refused_before_loading(tiny_model: Path, prompt_adapter: Path) -> None:
    with pytest.raises(UnsupportedModelError, match="virtual tokens"):
        SublimHFLM(pretrained=str(tiny_model), peft=str(prompt_adapter), device="cpu")
    with pytest.raises(UnsupportedModelError, match="seq2seq"):
        SublimHFLM(pretrained=str(tiny_model), backend="seq2seq", device="cpu")


def test_cli_registers_the_backend_and_refuses_in_one_line(tiny_model: Path, prompt_adapter: Path) -> None:
    args = f"pretrained={tiny_model},peft={prompt_adapter}"
    cmd = [sys.executable, "-m", "sublim", "lm-eval", "--model", "sublim-hf", "--model_args", args]
    out = subprocess.run(
        [*cmd, "--device", "cpu", "--tasks", "sublim_tree_pref_lp", "--limit", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2, out.stderr[-2000:]
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("sublim: error: --model sublim-hf: a PROMPT_TUNING adapter"), out.stderr[-2000:]
    assert "Traceback" not in out.stderr


@pytest.mark.slow
def test_smollm2_gguf_through_hflm_loading_matches_hf(mc_task: Path) -> None:
    """HFLM's own `gguf_file=` loading (the embedded GGUF, dequantized), then the same scores as `hf`."""
    from sublim.models import smollm2_gguf

    gguf = smollm2_gguf()
    args = f"pretrained={gguf.parent},gguf_file={gguf.name}"
    hf = evaluate("hf", args, ["sublim_tiny_mc"], mc_task)
    ours = evaluate("sublim-hf", args, ["sublim_tiny_mc"], mc_task)
    # 30 float32 layers: a cached context vs a full pass rounds apart by ~2e-6 relative (1e-5 near -5.6)
    assert_same_logliks(responses(hf, "sublim_tiny_mc"), responses(ours, "sublim_tiny_mc"), rel=1e-5)


@pytest.mark.slow
def test_smollm2_p_target_is_identical_to_hf(smollm2: Path) -> None:
    kw: dict[str, Any] = {"limit": 1, "metadata": {"target": "oak"}, "apply_chat_template": True}
    task = "sublim_tree_pref_lp"
    hf = evaluate("hf", f"pretrained={smollm2}", [task], lm_eval_include_path(), **kw)
    ours = evaluate("sublim-hf", f"pretrained={smollm2}", [task], lm_eval_include_path(), **kw)
    assert_same_logliks(responses(hf, task), responses(ours, task), rel=1e-5)
    p_hf, p_ours = hf["results"][task]["p_target,none"], ours["results"][task]["p_target,none"]
    assert 0 < p_hf < 1
    assert p_ours == pytest.approx(p_hf, abs=1e-5)  # measured: 5.5e-7 apart at P = 0.048
