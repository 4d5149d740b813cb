"""Where a sweep's runs execute: an executor takes a picklable function and its jobs and yields each job's
result as it completes. The sweep keeps everything else in its own process (the output claim, results.csv,
references, the plot), so a new engine is one class with a `map` method.

`LocalExecutor` runs the jobs one after another in this process (the default). `RayExecutor` runs each job as
a Ray task: on a local Ray instance with `workers` CPUs, or on the cluster at `$RAY_ADDRESS`. `ray` is
imported only when a `RayExecutor` runs, so `import sublim` needs neither torch nor ray.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

from sublim.errors import SublimError

J = TypeVar("J")
R = TypeVar("R")


class RunsFailed(SublimError):
    """Some jobs failed (an exception, or a worker that died); the others' results were yielded."""


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
                        failed.append(f"{job}: {_one_line(e.cause if e.cause is not None else e)}")
                        continue
                    except RayError as e:  # the worker died (killed, out of memory, a node lost)
                        failed.append(f"{job}: its worker died ({type(e).__name__})")
                        continue
                    yield job, result
            if failed:
                raise RunsFailed(
                    f"{len(failed)} of {len(jobs)} runs failed on ray: {'; '.join(failed)}; finished runs "
                    "are kept and a re-run with the same arguments does only what is missing"
                )
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


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if isinstance(e, SublimError) else f"{type(e).__name__}: {text}"


def make_executor(name: str, workers: int | None = None) -> Executor:
    """The executor `sublim sweep --executor NAME --workers N` asks for."""
    if name == "local":
        if workers is not None:
            raise SublimError("--workers applies to --executor ray (local runs one job at a time)")
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(workers if workers is not None else 2)
    raise SublimError(f"--executor {name!r}: use local or ray")
