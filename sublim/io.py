"""Files sublim writes: atomic writes (readers never see half a file), run-card package versions, a lock for
work that several processes may start at once (`file_lock`, waits), and the output guard every writing command
uses (`claim_output`: no overlap with inputs, no silent overwrite, one writer at a time, a stamp recording the
inputs an output was made from)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from sublim.errors import SublimError


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to a temp name beside `path`, then rename: readers never see half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temp name beside `path` (same suffix, for writers that infer the format) that is renamed to `path`
    when the block succeeds: readers never see half a file, a failure leaves the old one."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, data: Any) -> None:
    """`data` as indented JSON, atomically; creates the parent folder. NaN is refused (not valid JSON)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(data, indent=1, allow_nan=False) + "\n")


def json_safe(data: Any) -> Any:
    """`data` with every NaN or infinity replaced by None (JSON has no NaN: "no value" is null)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: json_safe(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [json_safe(v) for v in data]
    return data


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing) until the block ends; other processes wait.

    POSIX `flock`: released by the kernel when the process dies, so a killed holder never blocks the next.
    Where `fcntl` is missing (Windows) the block runs unlocked: callers must still be correct, only slower.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def package_versions(*packages: str) -> dict[str, str]:
    """Installed version of each package ("not installed" when missing), for run cards."""
    out = {}
    for p in packages:
        try:
            out[p] = version(p.replace("_", "-"))
        except PackageNotFoundError:
            out[p] = "not installed"
    return out


# ---------------------------------------------------------------------------------------------- outputs

LOCK = ".sublim.lock"
STAMP = ".sublim-output.json"
_REPLACED = ".sublim-replaced"


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def identity_hash(identity: dict[str, Any], length: int = 10) -> str:
    """A short, stable hash of a JSON-able identity (key order does not matter)."""
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def check_separate(out: Path, inputs: Iterable[str | Path | None], flag: str = "--out") -> None:
    """Refuse an output that equals, sits inside, or holds one of the inputs (a write would clobber it)."""
    where = Path(out).expanduser().resolve()
    for item in inputs:
        if item is None or not Path(item).expanduser().exists():
            continue
        src = Path(item).expanduser().resolve()
        if _within(where, src) or _within(src, where):
            raise SublimError(
                f"{flag} {out} overlaps the input {item}: writing there would overwrite the input; "
                "choose another output dir"
            )


@dataclass
class Claim:
    """An output dir held by this process. `state`: "new" (start), "resume" (same inputs, unfinished) or
    "complete" (same inputs, finished: nothing to do)."""

    out: Path
    command: str
    identity: dict[str, Any]
    state: str
    previous: dict[str, Any] | None = None

    def done(self) -> None:
        """Mark the output complete (its inputs and the sublim version are recorded in the stamp)."""
        _write_stamp(self.out, self.command, self.identity, complete=True)
        shutil.rmtree(self.out / _REPLACED, ignore_errors=True)


def _read_stamp(out: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((out / STAMP).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _write_stamp(out: Path, command: str, identity: dict[str, Any], complete: bool) -> None:
    write_json(
        out / STAMP,
        {"command": command, "identity": identity, "complete": complete, **package_versions("sublim")},
    )


def _entries(out: Path) -> list[Path]:
    if not out.is_dir():
        return []
    return sorted(p for p in out.iterdir() if p.name not in (LOCK, STAMP, _REPLACED))


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Human-readable `key: old -> new` for every setting that differs."""
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def _decide(
    out: Path,
    command: str,
    identity: dict[str, Any],
    *,
    overwrite: bool,
    accept_other: bool,
    adopt: bool = False,
) -> tuple[str, dict[str, Any] | None]:
    """("new" | "resume" | "complete" | "replace", previous identity) or a SublimError; touches nothing."""
    if out.exists() and not out.is_dir():
        raise SublimError(f"--out {out} is a file; give a directory")
    stamp, entries = _read_stamp(out), _entries(out)
    if stamp is None:
        if not entries:
            return "new", None
        if overwrite:
            return "replace", None
        if adopt:
            return "resume", None
        raise SublimError(
            f"--out {out} already holds files sublim did not write here (e.g. {entries[0].name!r}); "
            "pass --overwrite to replace them, or choose an empty --out"
        )
    previous = stamp.get("identity") if isinstance(stamp.get("identity"), dict) else {}
    if stamp.get("command") != command:
        if overwrite:
            return "replace", previous
        raise SublimError(
            f"--out {out} holds the output of `sublim {stamp.get('command')}`, not `sublim {command}`; "
            "pass --overwrite to replace it, or choose another --out"
        )
    diff = differences(previous or {}, identity)
    if overwrite:
        return ("replace" if entries else "new"), previous
    if diff and not accept_other:
        raise SublimError(
            f"--out {out} holds a `sublim {command}` run with other inputs ({'; '.join(diff)}); "
            "pass --overwrite to replace it, or choose another --out"
        )
    if diff:
        return "resume", previous
    return ("complete" if stamp.get("complete") else "resume"), previous


def _lock(out: Path) -> Any:
    """An exclusive, non-blocking lock on out/.sublim.lock (released when the process dies)."""
    import fcntl

    try:
        fh = (out / LOCK).open("a+", encoding="utf-8")
    except OSError as e:
        raise SublimError(f"cannot write to --out {out}: {e.strerror or e}") from None
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        pid = fh.read().strip() or "unknown"
        fh.close()
        raise SublimError(
            f"--out {out} is being written by another sublim process (pid {pid}); wait for it to finish "
            "or choose another --out"
        ) from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    return fh


def check_output(
    out: str | Path,
    command: str,
    identity: dict[str, Any],
    inputs: Iterable[str | Path | None] = (),
    *,
    overwrite: bool = False,
    accept_other: bool = False,
    adopt: bool = False,
) -> str:
    """The checks of `claim_output` alone (nothing is written or locked): "new", "resume", "complete" or
    "replace", else a SublimError saying what to do."""
    check_separate(Path(out), inputs)
    identity = json.loads(json.dumps(identity, default=str))
    return _decide(Path(out), command, identity, overwrite=overwrite, accept_other=accept_other, adopt=adopt)[
        0
    ]


@contextmanager
def claim_output(
    out: str | Path,
    command: str,
    identity: dict[str, Any],
    inputs: Iterable[str | Path | None] = (),
    *,
    overwrite: bool = False,
    accept_other: bool = False,
    adopt: bool = False,
) -> Iterator[Claim]:
    """Hold `out` for one writer: refuse an output that overlaps an input, a non-empty dir sublim did not
    write, another command's output, or a run with other inputs (unless `overwrite`; `accept_other` lets a
    caller that keys its own results, like the sweep, continue with other inputs; `adopt` takes over a dir
    with no record of its inputs, e.g. one an earlier sublim wrote). All checks run before
    anything is written. Old contents replaced under `overwrite` are restored if the new run fails.
    Call `Claim.done()` when the output is complete."""
    out = Path(out)
    identity = json.loads(json.dumps(identity, default=str))
    check_output(out, command, identity, inputs, overwrite=overwrite, accept_other=accept_other, adopt=adopt)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SublimError(f"cannot create --out {out}: {e.strerror or e}") from None
    fh = _lock(out)
    replaced = out / _REPLACED
    try:
        state, previous = _decide(
            out, command, identity, overwrite=overwrite, accept_other=accept_other, adopt=adopt
        )
        if state == "replace":
            shutil.rmtree(replaced, ignore_errors=True)
            replaced.mkdir()
            for entry in _entries(out):
                os.replace(entry, replaced / entry.name)
            if (out / STAMP).exists():
                os.replace(out / STAMP, replaced / STAMP)
            state = "new"
        if state != "complete":
            _write_stamp(out, command, identity, complete=False)
        try:
            yield Claim(out, command, identity, state, previous)
        except BaseException:
            if replaced.is_dir():  # the new run failed: put the old output back
                for entry in _entries(out):
                    _remove(entry)
                for entry in replaced.iterdir():
                    os.replace(entry, out / entry.name)
                replaced.rmdir()
            raise
    finally:
        fh.close()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
