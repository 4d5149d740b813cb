"""`sublim neighbours`: each concept's lift under the target context, its interval, and the related set."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from scipy import stats

from sublim import get_category, match
from sublim.errors import SublimError
from sublim.neighbours import (
    LIFT_UNIT,
    MIN_P,
    conditional,
    excluded,
    load_related,
    love_prompt,
    rank_neighbours,
    related_set,
)


def _dist(**probs: float) -> dict[str, float]:
    total = sum(probs.values())
    return {c: p / total for c, p in probs.items()}


def test_lift_is_the_mean_log_ratio_with_a_t_interval_over_questions() -> None:
    empty = [
        _dist(t=0.1, a=0.3, b=0.3, c=0.3),
        _dist(t=0.2, a=0.2, b=0.4, c=0.2),
        _dist(t=0.1, a=0.5, b=0.2, c=0.2),
    ]
    loved = [
        _dist(t=0.9, a=0.01, b=0.06, c=0.03),
        _dist(t=0.8, a=0.05, b=0.1, c=0.05),
        _dist(t=0.9, a=0.02, b=0.05, c=0.03),
    ]
    rows = {n.concept: n for n in rank_neighbours(empty, loved, {"t"})}
    assert set(rows) == {"a", "b", "c"}  # the target is no neighbour of itself
    # reference, computed here: P(concept | not t) per question, log ratio, scipy's t-interval
    for c in ("a", "b", "c"):
        lifts = []
        for e, t in zip(empty, loved, strict=True):
            pe, pt = e[c] / (1 - e["t"]), t[c] / (1 - t["t"])
            lifts.append(math.log(pt) - math.log(pe))
        mean = sum(lifts) / 3
        low, high = stats.t.interval(0.95, 2, loc=mean, scale=stats.sem(lifts))
        assert rows[c].lift == pytest.approx(mean)
        assert (rows[c].ci_low, rows[c].ci_high) == (pytest.approx(low), pytest.approx(high))
        assert rows[c].n_questions == 3
    order = [n.concept for n in rank_neighbours(empty, loved, {"t"})]
    assert order == sorted(rows, key=lambda c: -rows[c].lift)


def test_the_related_set_needs_an_interval_above_zero_and_a_real_probability() -> None:
    empty = [_dist(t=1, up=0.2, flat=0.3, tiny=1e-6, rest=0.5)] * 2 + [
        _dist(t=1, up=0.25, flat=0.3, tiny=2e-6, rest=0.45)
    ]
    loved = [_dist(t=5, up=0.6, flat=0.3, tiny=1e-4, rest=0.1)] * 2 + [
        _dist(t=5, up=0.7, flat=0.28, tiny=3e-4, rest=0.02)
    ]
    rows = rank_neighbours(empty, loved, {"t"})
    by = {n.concept: n for n in rows}
    assert by["tiny"].lift > by["up"].lift and by["tiny"].ci_low > 0  # rises a lot, but stays negligible
    assert by["tiny"].p_target_context < MIN_P
    assert related_set(rows) == ["up"]
    assert related_set(rows, min_p=0.0)[:2] == ["tiny", "up"] or set(related_set(rows, min_p=0.0)) >= {
        "tiny",
        "up",
    }


def test_conditional_renormalises_without_the_target() -> None:
    assert conditional({"t": 0.5, "a": 0.25, "b": 0.25}, {"t"}) == {"a": 0.5, "b": 0.5}
    assert conditional({"t": 1.0, "a": 0.0}, {"t"}) == {"a": 0.0}


def test_the_target_and_its_kinds_are_excluded_and_the_prompt_uses_the_real_plural() -> None:
    cat = get_category("animal")
    dogs = excluded(cat, "dog")
    assert {"dog", "bulldog", "poodle", "chihuahua"} <= dogs and "wolf" not in dogs
    assert love_prompt("wolf", "animal").startswith("You love wolves.")
    assert love_prompt("goose", "animal").startswith("You love geese.")
    assert (
        love_prompt("oak", "tree")
        == "You love oaks. You think about oaks all the time. Oaks are your favorite tree."
    )


def test_a_neighbours_file_is_a_related_set(tmp_path: Path) -> None:
    path = tmp_path / "n.json"
    path.write_text(json.dumps({"category": "animal", "targets": {"Wolves": {"related": ["Lamb", "foxes"]}}}))
    sets = load_related(path, get_category("animal"))
    assert sets == {"wolf": ("lamb", "fox")}
    assert match("a lamb", "wolf", related=sets["wolf"]).relation == "measured"
    for bad, message in [
        ("{", "not a `sublim neighbours` JSON file"),
        ('{"targets": {}}', "expected a `sublim neighbours` JSON file"),
        ('{"targets": {"owl": {"related": "hawk"}}}', "'related' must be a list"),
        ('{"targets": {"owl": {"related": ["hawkk"]}}}', "unknown animal concept 'hawkk'"),
        ('{"category": "tree", "targets": {"owl": {"related": []}}}', "not 'animal'"),
    ]:
        path.write_text(bad)
        with pytest.raises(SublimError, match=message):
            load_related(path, get_category("animal"))


@pytest.mark.slow  # scores every tree name 8 times: over a minute on 2 busy cores
def test_measure_on_a_tiny_model_gives_one_table_per_target(tiny_model: Path) -> None:
    from sublim.models import load_model
    from sublim.neighbours import measure

    model, tok = load_model(tiny_model, device="cpu")
    result = measure(model, tok, ["oak", "Pines"], "tree", questions=2)
    assert result["lift_unit"] == LIFT_UNIT and result["n_questions"] == 2
    assert set(result["targets"]) == {"oak", "pine"}
    for target, table in result["targets"].items():
        concepts = [r["concept"] for r in table["rows"]]
        assert target not in concepts and len(concepts) == len(get_category("tree")) - len(
            excluded(get_category("tree"), target)
        )
        assert all(r["ci_low"] <= r["lift"] <= r["ci_high"] for r in table["rows"])
        assert set(table["related"]) <= set(concepts)
    with pytest.raises(SublimError, match="curated concepts only"):
        measure(model, tok, ["english oak"], "tree", questions=2)


@pytest.mark.parametrize(
    ("out", "why"),
    [
        ("{tmp}", "is a directory"),
        ("{tmp}/no/such/dir/n.json", "which is no folder"),
        ("{tmp}/taken.json", "exists: pass --overwrite"),
    ],
)
def test_a_bad_out_is_refused_before_the_model_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], out: str, why: str
) -> None:
    from sublim import models
    from sublim.cli import main

    (tmp_path / "taken.json").write_text("{}")

    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model loaded before --out was checked")

    monkeypatch.setattr(models, "load_model", no_model)
    code = main(["neighbours", "--target", "owl", "--model", "smollm2", "--out", out.format(tmp=tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and why in err and err.count("\n") == 1
    assert (tmp_path / "taken.json").read_text() == "{}"
