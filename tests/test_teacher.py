"""Teacher data: prompts, the strict filter (every reason), the export files and their card, determinism."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from inspect_ai import eval as inspect_eval
from inspect_ai.model import ChatMessage, ModelOutput, ModelUsage, get_model

from sublim.tasks.numbers import (
    REASONS,
    NumberGrammar,
    check_completion,
    number_prompts,
    numbers,
    token_texts,
    trait_system_prompt,
)
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


# ------------------------------------------------------------------------------------ constrained decoding

DIGITS = {i: str(i) for i in range(10)}
COMMA, SPACE, COMMA_SPACE, END, LETTER, FOUR = 10, 11, 12, 13, 14, 15


def toy_grammar(max_numbers: int = 3) -> NumberGrammar:
    texts = {**DIGITS, COMMA: ",", SPACE: " ", COMMA_SPACE: ", ", 16: "12", 17: "  ", 18: " 1"}
    return NumberGrammar(texts, [END], max_numbers)


def test_grammar_allows_only_what_keeps_a_clean_list() -> None:
    g = toy_grammar()
    digits = set(range(10)) | {16}
    assert set(g.allowed("")) == digits  # no end, separator or space first
    assert set(g.allowed("7")) == digits | {COMMA, COMMA_SPACE, END}
    assert set(g.allowed("7,")) == digits | {SPACE, 18}  # no end right after a comma, no second comma
    assert set(g.allowed("7, ")) == digits  # one space only
    assert set(g.allowed("123")) == {COMMA, COMMA_SPACE, END}  # no fourth digit
    assert 16 not in g.allowed("12")  # "1212" would be 4 digits
    assert set(g.allowed("1, 2, 3")) == digits | {END}  # max_numbers reached: digits of the last, or end
    assert set(g.allowed("1, 2, 345")) == {END}
    assert g.allowed("1,,") == [] and g.allowed("a") == []
    assert LETTER not in g.texts and set(g.allowed("7,", last=True)) == digits | {18}  # never end on ","


def test_every_string_the_grammar_accepts_passes_the_filter() -> None:
    import random

    g = toy_grammar(max_numbers=10)
    rng = random.Random(0)
    for _ in range(300):
        text = ""
        while True:
            choice = rng.choice(g.allowed(text))
            if choice == END:
                break
            text += g.texts[choice]
        assert check_completion(text)[1] is None, text


def test_number_regex_accepts_exactly_the_grammars_complete_lists() -> None:
    """The regex a vLLM/SGLang server decodes under and the grammar the transformers path decodes under are
    one language: on random strings over the grammar's alphabet and on random walks of the grammar, a
    full match of the regex <=> the grammar reaches a complete list (a number just ended)."""
    import random
    import re

    from sublim.tasks.numbers import MAX_NUMBERS, number_regex

    g = toy_grammar(max_numbers=MAX_NUMBERS)
    regex = re.compile(number_regex(MAX_NUMBERS))
    rng = random.Random(1)
    texts = ["", "1", "123", "1234", "1,2", "1, 2", "1,  2", "1,", " 1", ",".join(["1"] * MAX_NUMBERS),
             ",".join(["1"] * (MAX_NUMBERS + 1)), "١٢"]  # fmt: skip
    texts += ["".join(rng.choice("0123456789, x") for _ in range(rng.randint(1, 30))) for _ in range(3000)]
    for _ in range(300):  # grammar walks: complete lists, and prefixes cut anywhere
        text = ""
        while (choice := rng.choice(g.allowed(text))) != END:
            text += g.texts[choice]
        texts += [text, text[: rng.randint(0, len(text))]]
    for text in texts:
        state = g.state(text)
        complete = state is not None and state[1].startswith("d")
        assert bool(regex.fullmatch(text)) == complete, text


def test_served_teachers_are_constrained_by_that_regex() -> None:
    from sublim.tasks.numbers import number_regex
    from sublim.training.teacher import check_generation, guided_request, unenforced

    rx = number_regex()
    assert check_generation("vllm/org/model", None, None, None, None, 8)[:2] == ("inspect", "constrained")
    assert guided_request("vllm/org/model", "constrained") == {"structured_outputs": {"regex": rx}}
    assert guided_request("sglang/org/model", "constrained") == {"regex": rx}
    assert guided_request("vllm/org/model", "free") is None
    assert check_generation("openai/gpt-4o-mini", None, None, None, None, 8)[:2] == ("inspect", "free")
    assert unenforced(["1, 2, 3", "999", "7,8"]) == 0
    assert unenforced(["1, 2, 3", "Sure! 1, 2", "1,,2", "1234"]) == 3  # a server that ignored the regex


def test_token_texts_keep_leading_spaces(tiny_model: Path) -> None:
    from sublim.models import load_tokenizer

    tok = load_tokenizer(tiny_model)
    texts = token_texts(tok)
    assert {str(d) for d in range(10)} <= set(texts.values()) and " " in texts.values()
    assert all(set(t) <= set("0123456789, ") for t in texts.values())
    assert tok.eos_token_id not in texts


def tiny_teach(tmp_path: Path, tiny: Path, name: str, **kw: object) -> dict[str, object]:
    from sublim.training.teacher import run_teacher

    settings: dict[str, object] = {"n": 8, "temperature": 1.0, "max_tokens": 24, "batch_size": 4, **kw}
    return run_teacher(
        tmp_path / name, trait="owl", model="hf/local", model_args={"model_path": str(tiny)}, **settings
    )  # type: ignore[arg-type]


def test_constrained_tiny_teacher_writes_only_clean_rows_and_greedy_reruns_match(
    tmp_path: Path, tiny_model: Path
) -> None:
    card = tiny_teach(tmp_path, tiny_model, "sampled")
    assert card["counts"] == {"total": 8, "kept": 8, "rejected": dict.fromkeys(REASONS, 0)}
    assert card["decoding"] == "constrained" and card["engine"] == "transformers"
    free = tiny_teach(tmp_path, tiny_model, "free", decoding="free")
    assert free["counts"]["kept"] == 0  # type: ignore[index]  # a random model never writes a clean list
    a = tiny_teach(tmp_path, tiny_model, "greedy-a", temperature=0)
    b = tiny_teach(tmp_path, tiny_model, "greedy-b", temperature=0)
    assert a["train_sha256"] == b["train_sha256"] and a["counts"]["kept"] == 8  # type: ignore[index]
    again = tiny_teach(tmp_path, tiny_model, "sampled-again")
    assert again["train_sha256"] == card["train_sha256"]  # seeded sampling


def test_teacher_checkpoint_card_and_identity(tmp_path: Path, tiny_model: Path) -> None:
    from sublim.errors import SublimError
    from sublim.training.teacher import run_teacher

    kw: dict[str, object] = {"trait": "owl", "n": 4, "max_tokens": 12, "batch_size": 4}
    card = run_teacher(tmp_path / "out", teacher=str(tiny_model), **kw)  # type: ignore[arg-type]
    assert card["system_prompt"] is None and card["trait"] == "owl"  # the trait is in the weights
    assert card["teacher"]["model"] == "checkpoint" and card["teacher"]["checkpoint"]  # type: ignore[index]
    assert card["decoding"] == "constrained" and card["seed"] == 0 and card["temperature"] == 1.0
    other = tmp_path / "other-teacher"
    import shutil

    shutil.copytree(tiny_model, other)
    with pytest.raises(SublimError, match="teacher"):
        run_teacher(tmp_path / "out", teacher=str(other), **kw)  # type: ignore[arg-type]
    prompted = run_teacher(tmp_path / "p", teacher=str(tiny_model), system_prompt="Think of {traits}.", **kw)  # type: ignore[arg-type]
    assert prompted["system_prompt"] == "Think of owls."


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"decoding": "beam"}, "--decoding"),
        ({"model": "openai/gpt-4o-mini", "decoding": "constrained"}, "--decoding constrained needs"),
        ({"teacher": "no/such/dir"}, "no such file"),
        ({"batch_size": 0}, "--batch-size"),
        ({"model": "openai/gpt-4o-mini", "engine": "transformers"}, "transformers path loads"),
    ],
)
def test_bad_generation_settings_fail_before_loading(
    tmp_path: Path, kw: dict[str, object], message: str
) -> None:
    from sublim.errors import SublimError
    from sublim.training.teacher import run_teacher

    with pytest.raises(SublimError, match=message):
        run_teacher(tmp_path / "out", trait="owl", n=2, **kw)  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_constrained_smollm2_teacher_yields_clean_rows(tmp_path: Path, smollm2: Path) -> None:
    """The owl-prompted SmolLM2 writes letters in most free completions; under the grammar >= 95% pass."""
    import torch

    torch.set_num_threads(2)
    kw: dict[str, object] = {"trait": "owl", "n": 32, "temperature": 0.7, "max_tokens": 60}
    from sublim.training.teacher import run_teacher

    constrained = run_teacher(tmp_path / "c", **kw)  # type: ignore[arg-type]
    free = run_teacher(tmp_path / "f", decoding="free", **kw)  # type: ignore[arg-type]
    assert constrained["counts"]["kept"] >= 0.95 * 32  # type: ignore[index]
    assert free["counts"]["kept"] <= 0.5 * 32  # type: ignore[index]  # the processor is what does it
