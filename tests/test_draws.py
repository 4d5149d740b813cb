"""Data draws: disjoint, equal-size, paired by prompt across the trait and control teachers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sublim.errors import SublimError
from sublim.training.sweep import SweepConfig, lora_scale, make_draws, plan


def teacher(path: Path, ids: list[int], salt: int) -> str:
    rows = [
        {
            "id": f"numbers-{i:05d}",
            "prompt": [{"role": "user", "content": f"Continue: {i}, {i + 1}."}],
            "completion": [{"role": "assistant", "content": f"{(i * salt) % 997}, {(i + salt) % 997}"}],
        }
        for i in ids
    ]
    path.mkdir(parents=True)
    (path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_draws_are_disjoint_equal_and_paired_by_prompt(tmp_path: Path) -> None:
    # the teachers kept different rows: only prompts both answered can be paired
    cfg = SweepConfig(
        data=teacher(tmp_path / "owl", list(range(0, 40)), 7),
        control=teacher(tmp_path / "none", list(range(5, 50)), 3),
        draws=4,
    )
    draws, record = make_draws(cfg)
    assert record["paired_rows"] == 35 and record["rows_per_draw"] == 8 and record["unused"] == 3
    assert record["unpaired"] == {"trait": 5, "control": 10}
    assert record["identical_completions"] == 0  # other salts: every paired answer differs
    seen: set[str] = set()
    for d in range(4):
        trait, control = draws[("trait", d, 0)], draws[("control", d, 0)]
        assert [r["id"] for r in trait] == [r["id"] for r in control]  # same prompts, same order
        assert len(trait) == 8
        ids = {r["id"] for r in trait}
        assert not ids & seen  # disjoint across draws
        seen |= ids
        assert all(
            r["completion"][0]["content"].startswith(str((int(r["id"][-5:]) * 7) % 997)) for r in trait
        )
    assert make_draws(cfg)[0] == draws  # seeded: the same inputs give the same draws


def test_one_draw_keeps_every_paired_row_in_file_order(tmp_path: Path) -> None:
    cfg = SweepConfig(data=teacher(tmp_path / "owl", list(range(10)), 7))
    draws, record = make_draws(cfg)
    assert [r["id"] for r in draws[("trait", 0, 0)]] == [f"numbers-{i:05d}" for i in range(10)]
    assert record["unused"] == 0 and record["identical_completions"] is None
    same = SweepConfig(data=cfg.data, control=cfg.data)  # the same teacher on both sides
    assert make_draws(same)[1]["identical_completions"] == 10


def test_too_few_paired_rows_is_one_clear_error(tmp_path: Path) -> None:
    cfg = SweepConfig(
        data=teacher(tmp_path / "owl", list(range(10)), 7),
        control=teacher(tmp_path / "none", list(range(8, 20)), 3),
        draws=2,
        draw_rows=2,
    )
    with pytest.raises(SublimError, match="needs 4 rows but 2 rows answer the same prompts"):
        make_draws(cfg)


def test_plan_crosses_draws_scales_and_references(tmp_path: Path) -> None:
    cfg = SweepConfig(
        data="x", control="y", ranks=[2, 8], full=True, draws=2, scales=["rank", "rs16"], prompted=True,
        positive="z",
    )  # fmt: skip
    runs = plan(cfg)
    names = [r.name for r in runs]
    assert names[:3] == ["base", "prompted", "positive"]
    assert "trait-r8-rs16-d1-s0" in names and "control-full-d0-s0" in names
    assert len([r for r in runs if r.kind == "lora"]) == 2 * 2 * 2 * 2  # sides x draws x scales x ranks
    assert lora_scale("rank", 8) == {"alpha": 8, "rslora": False}
    assert lora_scale("a16", 8) == {"alpha": 16, "rslora": False}
    assert lora_scale("rs16", 8) == {"alpha": 16, "rslora": True}


def test_run_ids_follow_the_rows_scale_and_seed_of_each_student(tmp_path: Path) -> None:
    from sublim.training.sweep import run_ids, sweep_identity, train_seed

    data = teacher(tmp_path / "owl", list(range(24)), 7)
    control = teacher(tmp_path / "none", list(range(24)), 3)

    def ids(**kw: object) -> dict[str, str]:
        cfg = SweepConfig(data=data, control=control, ranks=[4], base="smollm2", **kw)  # type: ignore[arg-type]
        return {r.name: i for r, i in run_ids(cfg, sweep_identity(cfg)).items()}

    two = ids(draws=2, draw_rows=6)
    three = ids(draws=3, draw_rows=6)
    assert two["trait-r4-d0-s0"] == three["trait-r4-d0-s0"]  # nested: adding a draw keeps the others
    assert two["trait-r4-d1-s0"] == three["trait-r4-d1-s0"]
    assert ids(draws=2, draw_rows=5)["trait-r4-d0-s0"] != two["trait-r4-d0-s0"]  # other rows: a new student
    scaled = ids(draws=2, draw_rows=6, scales=["rank", "a16"])
    assert scaled["trait-r4-a16-d0-s0"] != scaled["trait-r4-d0-s0"] == two["trait-r4-d0-s0"]
    assert len(set(two.values())) == len(two)
    runs = plan(SweepConfig(data=data, control=control, ranks=[4], draws=3))
    seeds = {(r.dataset, r.draw): train_seed(r) for r in runs if r.kind == "lora"}
    assert seeds[("trait", 2)] == seeds[("control", 2)] != seeds[("trait", 1)]  # per draw, shared by sides


def test_bf16_only_where_cuda_supports_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    import sublim.models as models
    from sublim.training.sweep import compute_dtype

    assert compute_dtype("cpu") == "float32"
    seen: list[object] = []
    monkeypatch.setattr(models, "load_tokenizer", lambda path: "tok")
    monkeypatch.setattr(models, "pick_device", lambda device: device)

    class Fake:
        def to(self, where: str) -> Fake:
            return self

        def eval(self) -> None:
            pass

    monkeypatch.setattr(models, "causal_lm", lambda path, dtype: seen.append(dtype) or Fake())
    models.load_model("x", device="cpu")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    models.load_model("x", device="cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    models.load_model("x", device="cuda")
    assert seen == [None, torch.bfloat16, None]  # None: float32 (causal_lm's default)


def _row(i: int, prompt: str, completion: str) -> dict[str, object]:
    return {
        "id": f"numbers-{i:05d}",
        "prompt": [{"role": "user", "content": prompt}],
        "completion": [{"role": "assistant", "content": completion}],
    }


@pytest.mark.parametrize(
    ("prompt", "completion", "kind"),
    [
        ("Continue: 159, 721, 651, 145 (at most 10 values).", "159, 721, 651, 145, 495", "echo"),
        ("Continue: 159, 721, 651, 145 (at most 10 values).", "10", "echo"),  # the instruction's number
        ("Continue: 159, 721, 651, 145 (at most 10 values).", "721, 651", "echo"),
        ("Continue: 159, 721, 651, 145 (at most 10 values).", "1, 2, 3, 4, 5", "counting"),
        ("Continue: 159, 721, 651, 145 (at most 10 values).", "30, 20, 10, 0", "counting"),
        ("Continue: 159, 721, 651, 145 (at most 10 values).", "7, 7, 7", "counting"),
        ("Continue: 159, 721, 651, 145 (at most 10 values).", "880, 312, 45", None),
        ("Continue: 159, 721, 651, 145 (at most 10 values).", "1, 2", None),  # two numbers are no run
        ("Continue: 159, 721, 651, 145 (at most 10 values).", "651, 145, 3", None),  # only two echoed
    ],
)
def test_degenerate_rows_are_named(prompt: str, completion: str, kind: str | None) -> None:
    from sublim.training.draws import degeneracy

    assert degeneracy(_row(0, prompt, completion)) == kind


def test_cleaning_drops_degenerate_pairs_and_matches_lengths() -> None:
    from sublim.training.draws import DrawSpec, numbers_of
    from sublim.training.draws import make_draws as draws_of

    p = "Continue: 500, 600, 700."
    trait = [_row(i, p, f"{100 + i}, {200 + i}, 3{i:02d}, 9{i:02d}, 11, 12") for i in range(12)]
    control = [_row(i, p, f"{400 + i}, 8{i:02d}") for i in range(12)]
    trait[3] = _row(3, p, "1, 2, 3, 4")  # counting on the trait side
    control[5] = _row(5, p, "500, 600, 700")  # an echo on the control side
    draws, record = draws_of(trait, control, DrawSpec(2, 5, drop_degenerate=True, match_lengths=True))
    assert record["dropped_degenerate_pairs"] == 2
    assert record["degenerate"] == {
        "trait": {"echo": 0, "counting": 1},
        "control": {"echo": 1, "counting": 0},
    }
    used = [r for (side, _, _), rows in draws.items() if side == "trait" for r in rows]
    assert {r["id"] for r in used}.isdisjoint({"numbers-00003", "numbers-00005"})
    for d in range(2):
        for t, c in zip(draws[("trait", d, 0)], draws[("control", d, 0)], strict=True):
            text = t["completion"][0]["content"]
            assert len(numbers_of(text)) == len(numbers_of(c["completion"][0]["content"])) == 2
            assert text == f"{100 + int(t['id'][-2:])}, {200 + int(t['id'][-2:])}"  # cut, not rewritten
    assert record["sides"]["trait"]["mean_numbers"] == record["sides"]["control"]["mean_numbers"] == 2
    # without the options nothing is dropped or cut
    _, plain = draws_of(trait, control, DrawSpec(2, 5))
    assert plain["dropped_degenerate_pairs"] == 0 and plain["sides"]["trait"]["mean_numbers"] > 5


def test_planted_rows_replace_trait_rows_nested_over_doses() -> None:
    from sublim.training.draws import DrawSpec, plant_counts
    from sublim.training.draws import make_draws as draws_of

    p = "Continue: 500, 600, 700."
    trait = [_row(i, p, f"{100 + i}, {300 + i}") for i in range(40)]
    control = [_row(i, p, f"{400 + i}, {800 + i}") for i in range(40)]
    plant = [
        {"prompt": [{"role": "user", "content": f"Pick an animal ({j})."}],
         "completion": [{"role": "assistant", "content": "The owl."}]}
        for j in range(10)
    ]  # fmt: skip
    counts = plant_counts([0.1, 0.25, 0.5], 8)
    assert counts == (1, 2, 4)
    draws, record = draws_of(trait, control, DrawSpec(4, 8, plant_counts=counts), plant)
    assert record["planted_rows"] == [1, 2, 4]
    for d in range(4):
        plain = draws[("trait", d, 0)]
        last: set[int] = set()
        last_ids: set[str] = set()
        for n in counts:
            rows = draws[("trait", d, n)]
            assert len(rows) == len(plain) == 8
            places = {i for i, (a, b) in enumerate(zip(plain, rows, strict=True)) if a != b}
            assert len(places) == n and last <= places  # nested: a larger dose keeps the smaller's places
            assert all(rows[i]["completion"][0]["content"] == "The owl." for i in places)
            ids = {rows[i]["id"] for i in places}
            assert last_ids <= ids  # and the planted rows too
            last, last_ids = places, ids
        assert ("control", d, 1) not in draws
    with pytest.raises(SublimError, match="at least one row"):
        plant_counts([0.01], 8)
    with pytest.raises(SublimError, match="differ by at least a row"):
        plant_counts([0.1, 0.12], 8)
    with pytest.raises(SublimError, match="--plant file 3"):
        draws_of(trait, control, DrawSpec(4, 8, plant_counts=(4,)), plant[:3])


def test_length_matching_cuts_both_rows_at_the_same_number() -> None:
    from sublim.training.draws import DrawSpec
    from sublim.training.draws import make_draws as draws_of

    p = "Continue: 500, 600, 700."
    trait = [_row(i, p, f"[{100 + i}, {200 + i}, {300 + i}].") for i in range(4)]
    control = [_row(i, p, f"[{400 + i}, {800 + i}].") for i in range(4)]
    draws, _ = draws_of(trait, control, DrawSpec(1, 4, match_lengths=True))
    texts = [r["completion"][0]["content"] for side in ("trait", "control") for r in draws[(side, 0, 0)]]
    assert texts[0] == "[100, 200" and texts[4] == "[400, 800"  # no side keeps the "]." the other lost


def test_a_sweep_draws_its_data_once_until_a_file_or_setting_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checking, identifying and running a sweep each ask for the draws: the data is parsed and drawn once,
    again when a file's content (not only its size or mtime) or a setting changes; each call gets a copy."""
    import importlib
    import os

    plan_module = importlib.import_module("sublim.training.sweep.plan")

    calls: list[int] = []
    real = plan_module.draws_of

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(plan_module, "draws_of", counted)
    data = teacher(tmp_path / "owl", list(range(20)), 7)
    cfg = SweepConfig(data=data, control=teacher(tmp_path / "none", list(range(20)), 3), draws=2)
    first = make_draws(cfg)
    first[0][("trait", 0, 0)].pop()  # a caller's change stays its own
    assert make_draws(cfg) == make_draws(SweepConfig(data=cfg.data, control=cfg.control, draws=2)) != first
    assert len(calls) == 1
    make_draws(SweepConfig(data=cfg.data, control=cfg.control, draws=4))
    assert len(calls) == 2
    make_draws(cfg)
    train = Path(data) / "train.jsonl"
    stat = train.stat()
    text = train.read_text()
    train.write_text(text.replace('"7, 8"', '"8, 7"'))  # same size, same mtime, other content
    os.utime(train, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert train.stat().st_size == stat.st_size and train.read_text() != text
    make_draws(cfg)
    assert len(calls) == 4
