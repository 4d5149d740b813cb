from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sublim.cli import main

SUBLIM = str(Path(sys.executable).with_name("sublim"))


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SUBLIM, *args], input=stdin, capture_output=True, text=True, timeout=120, env=os.environ.copy()
    )


def test_match_prints_one_json_object_per_answer() -> None:
    out = run("match", "--category", "animal", "--target", "wolf", "Wolverine", "Dog")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["response"] for r in rows] == ["Wolverine", "Dog"]
    assert [(r["level"], r["concept"], r["relation"]) for r in rows] == [
        ("related", "wolverine", "lexical"),
        ("related", "dog", "taxonomic"),
    ]
    assert all({"level", "concept", "relation", "score"} <= set(r) for r in rows)


def test_match_reads_answers_from_stdin() -> None:
    out = run("match", "-t", "owl", stdin="Owls!\nBowl\n")
    assert [json.loads(x)["level"] for x in out.stdout.splitlines()] == ["exact", "none"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["match", "-t", "wolff", "x"], "unknown animal concept 'wolff'; closest valid:"),
        (["match", "-c", "animl", "-t", "owl", "x"], "did you mean 'animal'"),
        (["match", "-t", "owl", "--concepts", "/nonexistent.yaml", "x"], "cannot read concept file"),
    ],
)
def test_user_mistakes_exit_2_with_a_message_and_no_traceback(args: list[str], message: str) -> None:
    out = run(*args)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    assert out.stdout == ""


def test_concepts_lists_categories_and_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["concepts"]) == 0
    assert "animal\t" in capsys.readouterr().out
    assert main(["concepts", "tree", "--json"]) == 0
    assert "oak" in json.loads(capsys.readouterr().out)


def test_inspect_entry_point_is_registered() -> None:
    from importlib.metadata import entry_points

    eps = {ep.name: ep.value for ep in entry_points(group="inspect_ai")}
    assert eps.get("sublim") == "sublim._registry"
    __import__("sublim._registry")


def test_version_is_the_installed_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    import sublim

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"sublim {sublim.__version__}\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+", sublim.__version__)
    pyproject = (Path(__file__).parent.parent / "pyproject.toml").read_text()
    assert 'path = "sublim/__init__.py"' in pyproject  # the wheel's version is read from there
