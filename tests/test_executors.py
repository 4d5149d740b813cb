"""Sweep executors: a sweep through Ray (or Slurm, through submitit's local stand-in) gives the local
executor's results.csv (up to row order); a worker that dies mid-run costs only its run, which a re-run
redoes; `--executor ray` without ray is one line."""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from sublim.cli import main
from sublim.training.executors import LocalExecutor, RayExecutor, RunsFailed, SlurmExecutor, make_executor


def test_ray_without_ray_installed_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # find_spec("ray") is None and `import ray` fails
    out = tmp_path / "sweep"
    code = main(["sweep", "--data", str(tmp_path / "nothing"), "--out", str(out), "--executor", "ray"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "--executor ray` needs ray" in err and "pip install 'sublim[ray]'" in err
    assert not out.exists()  # refused before anything was checked or written


def test_slurm_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sbatch = tmp_path / "sbatch"
    sbatch.write_text("#!/bin/sh\nexit 1\n")
    sbatch.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    pairs = ["slurm_partition=gpu", "timeout_min=240", "mem_gb=7.5", "stderr_to_stdout=true"]
    slurm = make_executor("slurm", out="sweeps/a", slurm=pairs)
    assert isinstance(slurm, SlurmExecutor) and slurm.folder == Path("sweeps/a/slurm")
    assert slurm.cluster == "slurm"
    assert slurm.parameters == {
        "slurm_partition": "gpu", "timeout_min": 240, "mem_gb": 7.5, "stderr_to_stdout": True
    }  # fmt: skip


def test_executor_flags() -> None:
    assert isinstance(make_executor("local"), LocalExecutor)
    ray = make_executor("ray")
    assert isinstance(ray, RayExecutor) and ray.workers == 2
    with pytest.raises(Exception, match="--workers applies to --executor ray"):
        make_executor("local", 3)
    with pytest.raises(Exception, match="--workers 0"):
        make_executor("ray", 0)
    with pytest.raises(Exception, match="--executor slurm: no sbatch on this machine"):
        make_executor("slurm", out="sweeps/a")  # where Slurm is missing, not a silent local fallback
    with pytest.raises(Exception, match="--slurm 'gpu': expected KEY=VALUE"):
        make_executor("slurm", slurm=["gpu"])
    with pytest.raises(Exception, match="--slurm applies to --executor slurm"):
        make_executor("ray", slurm=["timeout_min=1"])


def test_a_bad_slurm_parameter_is_one_line(tmp_path: Path) -> None:
    pytest.importorskip("submitit")
    from sublim.errors import SublimError

    executor = SlurmExecutor(tmp_path, {"no_such_option": 1}, cluster="local")
    with pytest.raises(SublimError, match=r"--slurm: .*no_such_option"):
        list(executor.map(str, [1]))


def double(x: int) -> int:
    if x == 3:
        raise ValueError("three is refused")
    return 2 * x


def test_slurm_jobs_yield_results_and_name_the_failed_one(tmp_path: Path) -> None:
    """Through submitit's local stand-in for Slurm (one process per job): every result comes back, the job
    that raised is named with its error and log, and nothing is left pending."""
    pytest.importorskip("submitit")
    executor = SlurmExecutor(tmp_path / "slurm", {"timeout_min": 5}, cluster="local", poll_seconds=0.2)
    got: dict[int, int] = {}
    with pytest.raises(RunsFailed) as failure:
        for job, result in executor.map(double, [1, 2, 3, 4]):
            got[job] = result
    assert got == {1: 2, 2: 4, 4: 8}
    message = str(failure.value)
    assert message.startswith("1 of 4 runs failed on slurm: 3: ValueError: three is refused (log: ")
    assert "\n" not in message and str(tmp_path / "slurm") in message


# ------------------------------------------------------------------------------- through a local Ray


def grid(tiny_model: Path, root: Path, out: str) -> Any:
    from sublim.training.sweep import SweepConfig

    return SweepConfig(
        data=str(root / "owl"),
        control=str(root / "control"),
        base=str(tiny_model),
        out=str(root / out),
        ranks=[1, 2],
        seeds=[0],
        full=True,
        draws=2,
        contexts=["none"],
        questions=2,
        train={"epochs": 1, "batch_size": 4},
    )


def table(path: Path) -> list[tuple[tuple[str, str], ...]]:
    """results.csv's rows, every column, sorted: the content without the order runs finished in."""
    with path.open(newline="") as fh:
        return sorted(tuple(sorted(r.items())) for r in csv.DictReader(fh))


@pytest.fixture(scope="module")
def local(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The grid through the local executor: (data root, results.csv). With one torch thread, as each Ray
    worker here has (1 CPU each): with more threads float sums run in another order and the 6th decimal of a
    log-probability can differ (measured: 4 of 13 rows, by 1e-6), as between two local runs with other
    thread counts."""
    pytest.importorskip("peft")
    import torch

    from sublim.training.sweep import sweep
    from tests.test_sweep import teacher_data

    root = tmp_path_factory.mktemp("executors")
    teacher_data(root / "owl", 7)
    teacher_data(root / "control", 3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sweep(grid(tiny_model, root, "local"))
    finally:
        torch.set_num_threads(threads)
    return root, root / "local" / "results.csv"


@pytest.mark.slow
def test_ray_gives_the_local_results(tiny_model: Path, local: tuple[Path, Path]) -> None:
    pytest.importorskip("ray")
    from sublim.training.sweep import sweep

    root, expected = local
    rows = sweep(grid(tiny_model, root, "ray"), executor=RayExecutor(workers=2))
    got = root / "ray" / "results.csv"
    assert len(rows) == 1 + 2 * 2 * 3  # base + sides x draws x (2 ranks + full), one context
    assert table(got) == table(expected)
    assert (root / "ray" / "sweep.png").is_file() and (root / "ray" / "summary.md").is_file()


@pytest.mark.slow
def test_a_worker_that_dies_costs_only_its_run(
    tiny_model: Path, local: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("ray")
    from sublim.training.sweep import run_ids, sweep, sweep_identity

    root, expected = local
    cfg = grid(tiny_model, root, "killed")
    out = Path(cfg.out)
    ids = {r.name: i for r, i in run_ids(cfg, sweep_identity(cfg)).items()}
    victim = out / "runs" / ids["trait-r1-d1-s0"]
    # tests/hooks/sitecustomize.py, loaded by the Ray workers the executor starts, kills this run's student
    hooks = str(Path(__file__).parent / "hooks")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [hooks, os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("SUBLIM_TEST_KILL_RUN", victim.name)
    with pytest.raises(RunsFailed) as failure:
        sweep(cfg, executor=RayExecutor(workers=2))
    message = str(failure.value)
    assert "\n" not in message
    assert message.startswith("1 of 13 runs failed on ray: trait-r1-d1-s0: its worker died")
    assert victim.is_dir() and not (victim / "run.json").exists()  # half-written weights, no run card
    with (out / "results.csv").open(newline="") as fh:
        first = list(csv.DictReader(fh))
    assert len(first) == 12 and ids["trait-r1-d1-s0"] not in {r["run"] for r in first}
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/run.json")}
    assert len(stamps) == 11  # the 11 other students finished

    monkeypatch.delenv("SUBLIM_TEST_KILL_RUN")
    sweep(cfg, executor=RayExecutor(workers=2))
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # finished students were not retrained
    assert (victim / "run.json").is_file()
    assert table(out / "results.csv") == table(expected)  # nothing lost, nothing duplicated


@pytest.mark.slow
def test_slurm_gives_the_local_results(
    tiny_model: Path, local: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The grid through submitit's local stand-in for Slurm (each run its own process, one torch thread as
    in the local fixture): the same results.csv."""
    pytest.importorskip("submitit")
    from sublim.training.sweep import sweep

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the jobs' processes inherit it
    root, expected = local
    cfg = grid(tiny_model, root, "slurm")
    executor = SlurmExecutor(Path(cfg.out) / "slurm", {"timeout_min": 30}, cluster="local", poll_seconds=1)
    sweep(cfg, executor=executor)
    assert table(root / "slurm" / "results.csv") == table(expected)
