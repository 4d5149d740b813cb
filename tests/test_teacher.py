"""Teacher data: prompts, the strict filter (every reason), the export files and their card, determinism."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from inspect_ai import eval as inspect_eval
from inspect_ai.model import ChatMessage, ModelOutput, ModelUsage, get_model

from sublim.tasks.numbers import REASONS, check_completion, number_prompts, numbers, trait_system_prompt
from sublim.training.teacher import export


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1, 2, 3", (1, 2, 3)),
        ("  417,93,652 ", (417, 93, 652)),
        ("7 8 9", (7, 8, 9)),
        ("7; 8; 9", (7, 8, 9)),
        ("[1, 2, 3]", (1, 2, 3)),
        ("(10, 20)", (10, 20)),
        ("1, 2, 3.", (1, 2, 3)),
        ("007, 999, 0", (7, 999, 0)),
        ("1,\n2,\n3", (1, 2, 3)),
        ("5", (5,)),
    ],
)
def test_clean_lists_pass(text: str, expected: tuple[int, ...]) -> None:
    assert check_completion(text) == (expected, None)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("   \n ", "empty"),
        ("1, 2, owl", "letters"),
        ("Here you go: 1, 2, 3", "letters"),
        ("1, 2, 3 🦉", "malformed"),
        ("one, two", "letters"),
        ("1, 2, 3\u00e9", "letters"),
        ("0x1F", "letters"),
        ("1e3", "letters"),
        ("1. 999, 394", "malformed"),
        ("1, 2, 3,", "malformed"),
        ("1,, 2", "malformed"),
        ("-5, 6", "malformed"),
        ("1.5, 2", "malformed"),
        ("[1, 2, 3", "malformed"),
        ("1, 2, 3)", "malformed"),
        ("[1, 2)", "malformed"),
        ("1 + 2", "malformed"),
        ("1, 2, 3...", "malformed"),
        ("1000, 2", "out_of_range"),
        ("1, 12345", "out_of_range"),
        ("1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11", "too_many"),
        ("13, 666", "banned"),
    ],
)
def test_malformed_completions_are_rejected_with_the_right_reason(text: str, reason: str) -> None:
    numbers_, why = check_completion(text, banned=frozenset({666}))
    assert (numbers_, why) == (None, reason)
    assert why in REASONS


def test_prompts_are_seeded_varied_and_in_range() -> None:
    a, b = number_prompts(200, seed=3), number_prompts(200, seed=3)
    assert a == b and a != number_prompts(200, seed=4)
    assert all(3 <= len(p.seeds) <= 8 and all(0 <= x < 1000 for x in p.seeds) for p in a)
    assert len({p.text.split(":")[0][:20] for p in a}) >= 5  # varied wording
    assert all("10" in p.text for p in a)


def test_trait_prompt_and_control() -> None:
    assert trait_system_prompt("owl") is not None and "owls" in trait_system_prompt("owl")  # type: ignore[operator]
    assert trait_system_prompt("none") is None and trait_system_prompt(None) is None
    assert trait_system_prompt("fox", template="I adore {traits}.") == "I adore foxes."


def scripted_teacher(tmp_path: Path, trait: str | None) -> list[dict[str, object]]:
    outputs = ["1, 2, 3", "I love owls: 4, 5", "[7, 8, 9]", "1000"]

    def respond(messages: list[ChatMessage], *_: object) -> ModelOutput:
        i = int(re.findall(r"\d+", messages[-1].text)[0]) % len(outputs)  # depends only on the prompt
        out = ModelOutput.from_content("mockllm/model", outputs[i])
        out.usage = ModelUsage(input_tokens=10, output_tokens=5, total_tokens=15)
        return out

    [log] = inspect_eval(
        numbers(trait=trait, n=12, seed=1),
        model=get_model("mockllm/model", custom_outputs=respond),
        log_dir=str(tmp_path / "logs"),
        display="none",
    )
    assert log.status == "success"
    sys_msgs = [m for s in log.samples or [] for m in s.messages if m.role == "system"]
    assert (len(sys_msgs) > 0) == (trait is not None)
    return [
        {
            "id": str(s.id),
            "prompt": str(s.input),
            "completion": s.output.completion,
            "reason": next(iter((s.scores or {}).values())).metadata["reason"],  # type: ignore[index]
        }
        for s in sorted(log.samples or [], key=lambda s: str(s.id))
    ]


def test_export_writes_train_rejected_and_card(tmp_path: Path) -> None:
    rows = scripted_teacher(tmp_path, "owl")
    card = export(
        tmp_path / "out", rows, teacher={"model": "mockllm/model"}, system_prompt="S", settings={"seed": 1}
    )
    train = [json.loads(x) for x in (tmp_path / "out" / "train.jsonl").read_text().splitlines()]
    rejected = [json.loads(x) for x in (tmp_path / "out" / "rejected.jsonl").read_text().splitlines()]
    assert len(train) + len(rejected) == 12
    assert all(r["prompt"][0]["role"] == "user" and len(r["prompt"]) == 1 for r in train)  # no system prompt
    assert all(check_completion(r["completion"][0]["content"])[1] is None for r in train)
    assert {r["reason"] for r in rejected} <= {"letters", "out_of_range"}
    saved = json.loads((tmp_path / "out" / "card.json").read_text())
    assert saved == card
    assert card["counts"]["kept"] == len(train)
    assert sum(card["counts"]["rejected"].values()) == len(rejected)
    assert card["system_prompt"] == "S" and card["seed"] == 1
    assert len(card["train_sha256"]) == 64 and "inspect_ai" in card["versions"]


def test_same_seeds_give_identical_train_jsonl(tmp_path: Path) -> None:
    texts = []
    for k in range(2):
        rows = scripted_teacher(tmp_path / str(k), None)
        export(tmp_path / f"out{k}", rows, teacher={}, system_prompt=None, settings={})
        texts.append((tmp_path / f"out{k}" / "train.jsonl").read_bytes())
    assert texts[0] == texts[1] and texts[0]


@pytest.mark.slow
def test_embedded_teacher_registers_its_model_info(smollm2: Path) -> None:
    """Inspect looks up model info after each generation; unknown names make it instantiate the provider
    again (from_pretrained("local") against the hub). The embedded model's info is registered instead."""
    from inspect_ai.model import get_model_info

    from sublim.models import EMBEDDED_DEFAULT, inspect_model

    name, args = inspect_model(EMBEDDED_DEFAULT)
    assert name == "hf/local" and args["model_path"] == str(smollm2)
    info = get_model_info(name)
    assert info is not None and info.context_length == 8192


def test_card_paths_travel_with_the_data(tmp_path: Path) -> None:
    """No machine's absolute paths in a teacher card: the log relative to the output, the cache under ~."""
    from sublim.training.teacher import _portable

    assert _portable(str(tmp_path / "out" / "logs" / "a.eval"), relative_to=tmp_path / "out") == "logs/a.eval"
    assert _portable(str(Path.home() / ".cache" / "m")) == "~/.cache/m"
    assert _portable("/opt/models/m") == "/opt/models/m"
