"""Where a sweep's runs execute: an executor takes a picklable function and its jobs and yields each job's
result as it completes. The sweep keeps everything else in its own process (the output claim, results.csv,
references, the plot), so a new engine is one class with a `map` method.

`LocalExecutor` runs the jobs one after another in this process (the default). `RayExecutor` runs each job as
a Ray task: on a local Ray instance with `workers` CPUs, or on the cluster at `$RAY_ADDRESS`. `SlurmExecutor`
submits each job to Slurm through submitit. `ray` and `submitit` are imported only when their executor runs,
so `import sublim` needs neither (nor torch).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sublim.errors import SublimError, one_line

J = TypeVar("J")
R = TypeVar("R")


class RunsFailed(SublimError):
    """Some jobs failed (an exception, or a worker that died); the others' results were yielded."""

    @classmethod
    def of(cls, engine: str, failed: Sequence[str], total: int) -> RunsFailed:
        return cls(
            f"{len(failed)} of {total} runs failed on {engine}: {'; '.join(failed)}; finished runs are kept "
            "and a re-run with the same arguments does only what is missing"
        )


class Executor(Protocol):
    """Runs `fn` on every job and yields `(job, fn(job))` as each finishes (any order). A job that fails
    either raises at once (local) or, after every other job's result was yielded, raises `RunsFailed`."""

    name: str

    def map(self, fn: Callable[[J], R], jobs: Sequence[J]) -> Iterator[tuple[J, R]]: ...


class LocalExecutor:
    """One job after another in this process, in order; the first failure stops the sweep."""

    name = "local"

    def map(self, fn: Callable[[J], R], jobs: Sequence[J]) -> Iterator[tuple[J, R]]:
        for job in jobs:
            yield job, fn(job)


class RayExecutor:
    """Each job a Ray task: one GPU per task when the cluster has GPUs, else one CPU.

    Connects to `$RAY_ADDRESS` when set (an existing cluster: `workers` is ignored, the cluster's size
    decides), else starts a local instance with `workers` CPUs and shuts it down afterwards. Tasks are not
    retried (`max_retries=0`): a task whose worker dies leaves no result (a student killed mid-training has
    no run.json), the other tasks finish, and `RunsFailed` names the failed jobs; a re-run does only what
    is missing. Results are yielded as tasks complete (`ray.wait`). If the caller stops early (Ctrl-C, an
    error) the tasks still queued or running are cancelled, so none writes after the caller let go of its
    output.
    """

    name = "ray"

    def __init__(self, workers: int = 2, address: str | None = None, log_to_driver: bool = True) -> None:
        if workers < 1:
            raise SublimError(f"--workers {workers}: must be >= 1")
        self.workers = workers
        self.log_to_driver = log_to_driver  # False: the workers' output stays in Ray's log files
        self.address = address if address is not None else os.environ.get("RAY_ADDRESS") or None

    def map(self, fn: Callable[[J], R], jobs: Sequence[J]) -> Iterator[tuple[J, R]]:
        import ray
        from ray.exceptions import RayError, RayTaskError

        started = False
        if not ray.is_initialized():
            if self.address:
                ray.init(address=self.address, log_to_driver=self.log_to_driver)
            else:
                # "local": a new instance even when `ray start` left one running on this machine
                ray.init(
                    address="local",
                    num_cpus=self.workers,
                    include_dashboard=False,
                    log_to_driver=self.log_to_driver,
                )
                started = True
        refs: dict[Any, J] = {}
        try:
            per_task = {"num_gpus": 1} if ray.cluster_resources().get("GPU", 0) >= 1 else {"num_cpus": 1}
            task = ray.remote(_in_worker).options(max_retries=0, **per_task)
            refs = {task.remote(fn, job): job for job in jobs}
            failed: list[str] = []
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1)
                for ref in ready:
                    job = refs.pop(ref)
                    try:
                        result = ray.get(ref)
                    except RayTaskError as e:  # the job raised: its own error, in one line
                        failed.append(f"{job}: {one_line(e.cause if e.cause is not None else e)}")
                        continue
                    except RayError as e:  # the worker died (killed, out of memory, a node lost)
                        failed.append(f"{job}: its worker died ({type(e).__name__})")
                        continue
                    yield job, result
            if failed:
                raise RunsFailed.of("ray", failed, len(jobs))
        finally:
            for ref in refs:  # stopped early: nothing may keep writing into the caller's output
                ray.cancel(ref, force=True)
            if started:
                ray.shutdown()


def _in_worker(fn: Callable[[J], R], job: J) -> R:
    """A Ray task: torch gets as many threads as the CPUs Ray gave the task, then the job runs."""
    import ray
    import torch

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))
    return fn(job)


#: A Slurm job's time limit unless `--slurm timeout_min=N` says otherwise (submitit's own default is 5 min).
DEFAULT_SLURM_MINUTES = 24 * 60


class SlurmExecutor:
    """Each job a Slurm job, submitted as one array through submitit; its logs and pickles go to `folder`.

    `parameters` go to submitit's `AutoExecutor.update_parameters` (`slurm_partition`, `timeout_min`,
    `gpus_per_node`, `cpus_per_task`, `mem_gb`, ...; `timeout_min` defaults to a day). `cluster="slurm"`
    submits to Slurm (`make_executor` refuses where there is no sbatch); `cluster="local"` runs the jobs as
    local processes (submitit's own stand-in for Slurm: what the tests use). As with Ray, a failed job leaves
    no result, the others are yielded, `RunsFailed` names the failed ones, and jobs still queued when the
    caller stops are cancelled.
    """

    name = "slurm"

    def __init__(
        self,
        folder: str | Path,
        parameters: Mapping[str, Any] | None = None,
        cluster: str | None = None,
        poll_seconds: float = 5.0,
    ) -> None:
        self.folder = Path(folder)
        self.parameters = dict(parameters or {})
        self.cluster = cluster
        self.poll_seconds = poll_seconds

    def map(self, fn: Callable[[J], R], jobs: Sequence[J]) -> Iterator[tuple[J, R]]:
        import submitit

        executor = submitit.AutoExecutor(folder=self.folder, cluster=self.cluster)
        try:
            executor.update_parameters(**{"timeout_min": DEFAULT_SLURM_MINUTES, **self.parameters})
        except (AssertionError, NameError, TypeError, ValueError) as e:  # submitit names the parameter
            raise SublimError(f"--slurm: {one_line(e)}") from None
        try:
            submitted = executor.map_array(_in_job, [fn] * len(jobs), list(jobs))
        except Exception as e:  # sbatch refused the array (partition, account, limits)
            raise SublimError(f"--executor slurm: submitting the runs failed: {_last_line(e)}") from None
        pending = dict(zip(submitted, jobs, strict=True))
        failed: list[str] = []
        try:
            while pending:
                finished = [s for s in pending if s.done()]
                if not finished:
                    time.sleep(self.poll_seconds)
                for handle in finished:
                    job = pending.pop(handle)
                    try:
                        result = handle.result()
                    except Exception as e:  # the job raised, or was killed / lost
                        failed.append(f"{job}: {_last_line(e)} (log: {handle.paths.stderr})")
                        continue
                    yield job, result
            if failed:
                raise RunsFailed.of("slurm", failed, len(jobs))
        finally:
            for handle in pending:  # stopped early: nothing may keep writing into the caller's output
                handle.cancel(check=False)


def _in_job(fn: Callable[[J], R], job: J) -> R:
    """A Slurm job: torch gets the CPUs Slurm gave the task (else all it sees), then the job runs."""
    cpus = os.environ.get("SLURM_CPUS_PER_TASK")
    if cpus:
        import torch

        torch.set_num_threads(max(1, int(cpus)))
    return fn(job)


def _last_line(e: BaseException) -> str:
    """A failed submitit job's own error: the last exception line of the traceback it carries ("ValueError:
    ..."), else the message's first line."""
    import re

    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    raised = [line for line in lines if re.match(r"[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b", line)]
    return (raised[-1] if raised else lines[0] if lines else type(e).__name__)[:300]


def make_executor(
    name: str, workers: int | None = None, out: str | Path = ".", slurm: Sequence[str] = ()
) -> Executor:
    """The executor `sublim sweep --executor NAME [--workers N] [--slurm KEY=VALUE ...]` asks for; Slurm
    jobs keep their logs in `<out>/slurm`."""
    if workers is not None and name != "ray":
        raise SublimError(f"--workers applies to --executor ray ({name} decides its own parallelism)")
    if slurm and name != "slurm":
        raise SublimError("--slurm applies to --executor slurm")
    if name == "local":
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(workers if workers is not None else 2)
    if name == "slurm":
        import shutil

        parameters = _parameters(slurm)
        if shutil.which("sbatch") is None:
            raise SublimError(
                "--executor slurm: no sbatch on this machine; run the sweep where Slurm jobs can be "
                "submitted (a login node)"
            )
        return SlurmExecutor(Path(out) / "slurm", parameters, cluster="slurm")
    raise SublimError(f"--executor {name!r}: use local, ray or slurm")


def _parameters(pairs: Sequence[str]) -> dict[str, Any]:
    """`KEY=VALUE` strings as submitit parameters, typed as submitit expects: "240" an int, "7.5" a float,
    "true"/"false" a bool, anything else a string."""
    from sublim.cli_options import key_values

    out: dict[str, Any] = {}
    for key, text in key_values(pairs, "--slurm", example="slurm_partition=gpu").items():
        value: Any = text.strip()
        if value.lower() in ("true", "false"):
            value = value.lower() == "true"
        else:
            for kind in (int, float):
                try:
                    value = kind(value)
                    break
                except ValueError:
                    pass
        out[key] = value
    return out
