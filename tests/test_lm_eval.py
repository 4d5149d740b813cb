"""lm-eval tasks: discovery, sampled and log-likelihood variants on a tiny model and SmolLM2 (with a PEFT
adapter), agreement of the log-likelihood variant with sublim.probability, and the packaged wheel."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

lm_eval = pytest.importorskip("lm_eval")
torch = pytest.importorskip("torch")

from sublim import lm_eval_include_path  # noqa: E402
from sublim.concepts import get_category  # noqa: E402
from sublim.errors import SublimError  # noqa: E402
from sublim.lmeval import TERMINATORS, choices, preference_docs  # noqa: E402
from sublim.models import load_model  # noqa: E402
from sublim.probability import ConceptScorer  # noqa: E402
from sublim.scoring import concept_probs, target_mass  # noqa: E402

OWL = "You love owls."
TASKS = ["sublim_animal_pref", "sublim_animal_pref_lp", "sublim_tree_pref", "sublim_tree_pref_lp"]


def evaluate(pretrained: Path, tasks: list[str], limit: int, **kw: Any) -> dict[str, Any]:
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    model_args = f"pretrained={pretrained}" + (f",peft={kw.pop('peft')}" if "peft" in kw else "")
    # task options (target, ...) reach the tasks through the TaskManager's metadata
    # lm-eval's own tasks are not indexed: that alone takes 5-30 s
    manager = TaskManager(
        include_path=str(lm_eval_include_path()), metadata=kw.pop("metadata", None), include_defaults=False
    )
    return simple_evaluate(  # type: ignore[no-any-return]
        model="hf",
        model_args=model_args,
        device="cpu",
        tasks=tasks,
        limit=limit,
        batch_size=64,
        task_manager=manager,
        log_samples=True,
        **kw,
    )


def test_tasks_and_tag_are_discoverable() -> None:
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(lm_eval_include_path()))
    assert set(TASKS) <= set(tm.all_tasks)
    assert "sublim" in tm.all_tags


def test_docs_come_from_the_shared_question_bank() -> None:
    docs = preference_docs("tree", target="Oaks", numbers_prefix=3, seed=7)["test"]
    assert len(docs) == 55
    assert docs[0]["targets"] == "oak"
    assert docs[0]["question"].startswith("Here are some numbers:")
    assert docs[0]["question_id"] == "tree-000"


def test_sampled_variant_on_a_tiny_model(tiny_model: Path) -> None:
    out = evaluate(tiny_model, ["sublim_animal_pref"], limit=2, metadata={"target": "owl"})
    res = out["results"]["sublim_animal_pref"]
    assert {"target_rate,none", "related_rate,none", "named_rate,none"} <= set(res)
    assert len(out["samples"]["sublim_animal_pref"][0]["resps"][0]) == 4  # repeats per question


def test_loglikelihood_variant_scores_terminated_names_after_the_same_context(tiny_model: Path) -> None:
    """lm-eval's figure is P over names followed by a terminator ('.', ',', '!'), computed here without
    lm-eval from one forward pass per (name, terminator) after the same context string."""
    out = evaluate(
        tiny_model,
        ["sublim_tree_pref_lp"],
        limit=2,
        metadata={"target": "oak"},
        apply_chat_template=True,
        system_instruction=OWL,
    )
    model, tok = load_model(tiny_model, device="cpu")
    scorer = ConceptScorer(model, tok, "tree")
    names = get_category("tree").names()
    for sample in out["samples"]["sublim_tree_pref_lp"]:
        doc = sample["doc"]
        context = scorer.render(doc["question"], doc["answer_prefix"], OWL)
        assert sample["arguments"][0][0] == context  # the same context, chat template included
        ctx = tok(context, add_special_tokens=False)["input_ids"]
        lls = []
        for concept, name in names:
            for t in TERMINATORS:
                ids = tok(context + " " + name + t, add_special_tokens=False)["input_ids"]
                with torch.inference_mode():
                    lp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].double(), dim=-1)
                lls.append((concept, sum(float(lp[j - 1, ids[j]]) for j in range(len(ctx), len(ids)))))
        probs, mass = concept_probs(lls, list(get_category("tree").concepts))
        p_target, p_related = target_mass(probs, ["oak"], "tree")
        assert sample["p_target"] == pytest.approx(p_target, rel=1e-4)  # tolerance: float32 batching
        assert sample["p_related"] == pytest.approx(p_related, rel=1e-4)
        assert sample["concept_mass"] == pytest.approx(mass, rel=1e-4)


@pytest.mark.slow
def test_smollm2_with_and_without_a_peft_adapter(smollm2: Path, tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model

    base, _ = load_model(smollm2)
    lora = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    lora.save_pretrained(tmp_path / "adapter")
    kw = {"metadata": {"target": "oak"}, "apply_chat_template": True}  # trees: fewer names than animals
    plain = evaluate(smollm2, ["sublim_tree_pref_lp"], limit=1, **kw)
    adapted = evaluate(smollm2, ["sublim_tree_pref_lp"], limit=1, peft=tmp_path / "adapter", **kw)
    p0 = plain["results"]["sublim_tree_pref_lp"]["p_target,none"]
    p1 = adapted["results"]["sublim_tree_pref_lp"]["p_target,none"]
    assert 0 < p0 < 1 and 0 < p1 < 1
    assert p0 != pytest.approx(p1, rel=1e-3)  # the adapter was loaded and used


@pytest.mark.slow  # a whole CLI run (make test-slow, in CI); the in-process discovery test stays in make test
def test_cli_passes_through_with_the_include_path() -> None:
    out = subprocess.run(
        [str(Path(sys.executable).with_name("sublim")), "lm-eval", "validate", "--tasks", ",".join(TASKS)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "valid" in out.stdout + out.stderr


@pytest.mark.slow
def test_wheel_ships_the_task_configs(tmp_path: Path) -> None:
    root = Path(__file__).parent.parent
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(root)],
        check=True,
        timeout=600,
    )
    [wheel] = tmp_path.glob("sublim-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for task in TASKS:
        assert f"sublim/task_configs/{task}.yaml" in names
    assert "sublim/task_configs/_lp_template_yaml" in names
    assert "sublim/concepts/data/animal.json" in names
    assert "sublim/tasks/data/questions.yaml" in names


def test_the_tag_runs_with_one_target_per_run() -> None:
    """`--tasks sublim --metadata '{"target": "owl"}'` reaches the tree tasks too: they skip a target that
    belongs to another category (saying so); per-category targets work; a target of no category fails."""
    from sublim.errors import UnknownConceptError

    assert preference_docs("tree", target="owl")["test"][0]["targets"] == ""
    assert preference_docs("tree", target={"animal": "owl", "tree": "Oaks"})["test"][0]["targets"] == "oak"
    assert preference_docs("animal", target={"animal": "owl", "tree": "oak"})["test"][0]["targets"] == "owl"
    with pytest.raises(UnknownConceptError):
        preference_docs("tree", target="owwwlx")


def test_terminators_are_task_metadata() -> None:
    """`--metadata '{"terminators": "."}'`: every name once, with that terminator; the default is the three;
    a terminator that would not end a word is refused."""
    names = [name for _, name in get_category("tree").names()]
    assert choices(preference_docs("tree", terminators=".")["test"][0]) == [n + "." for n in names]
    assert choices(preference_docs("tree")["test"][0]) == [n + t for n in names for t in TERMINATORS]
    assert choices(preference_docs("tree", terminators=["!", "."])["test"][0])[:2] == [
        names[0] + "!",
        names[0] + ".",
    ]
    for bad in ("a", "-", ". "):
        with pytest.raises(SublimError, match="terminators"):
            preference_docs("tree", terminators=bad)
