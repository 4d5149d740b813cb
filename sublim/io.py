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
import stat
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from sublim.errors import SublimError

#: flags for every file sublim creates: a new file only (never an existing one, never through a link)
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to a temp name beside `path`, then rename: readers never see half a file. The temp file
    is created new (O_EXCL, O_NOFOLLOW): a link planted under its name is replaced, never written through."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.unlink(missing_ok=True)  # a killed earlier process of the same pid (unlink never follows links)
        with os.fdopen(os.open(tmp, _CREATE, 0o644), "w", encoding="utf-8") as fh:
            fh.write(text)
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
    with _open_lock_file(path, "lock file") as handle:
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


def _open_lock_file(path: Path, what: str) -> Any:
    """A lock file opened for reading and writing, created if missing, never through a symbolic link
    (O_NOFOLLOW) and never a file with other names (a hard link): writing the pid there would clobber
    whatever the link points at."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    refuse = (
        f"{what} {path} is a link to another file; sublim never writes through links: remove it "
        "(`rm` removes the link, not its target) and re-run"
    )
    if path.is_symlink():
        raise SublimError(refuse)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as e:
        if path.is_symlink():  # planted between the check and the open (O_NOFOLLOW: ELOOP)
            raise SublimError(refuse) from None
        raise SublimError(f"cannot write {what} {path}: {e.strerror or e}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        raise SublimError(refuse)
    return os.fdopen(fd, "r+", encoding="utf-8")


def file_problem(path: str | Path) -> str | None:
    """Why `path` is not a regular file sublim can read, in words (None when it is one): a directory, a named
    pipe (reading one waits for a writer, forever), a device such as /dev/stdin, or nothing at all."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "no such file"
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory, not a file"
    if stat.S_ISFIFO(mode):
        return "is a named pipe (FIFO), not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device or a terminal, not a regular file"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a regular file"
    return "is not a regular file"


def read_text(path: Path, what: str = "file") -> str:
    """A text file sublim reads (teacher data, question banks): UTF-8, a leading byte-order mark dropped (a
    spreadsheet's "UTF-8" export writes one). A missing file or a byte that is not UTF-8 is one SublimError
    naming the file, the line and what to do."""
    path = Path(path)
    if path.exists() and not path.is_file():  # a dir, or a device such as /dev/zero that never ends
        raise SublimError(f"{what} {path} is not a regular file; give a file")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SublimError(f"cannot read {what} {path}: {e.strerror or e}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise SublimError(
            f"{path}:{line}: byte {data[e.start]:#04x} at column {column} is not UTF-8 text; save the {what} "
            "as UTF-8"
        ) from None


def read_jsonl(path: Path, what: str = "file") -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for every non-blank line of a JSON Lines file (read with `read_text`); a
    line that is not JSON is one SublimError naming the file and the line."""
    # split on newlines only: str.splitlines() also splits inside JSON strings that hold U+2028 or \x1c
    for i, line in enumerate(read_text(path, what).split("\n"), 1):
        if not line.strip():
            continue
        try:
            yield i, json.loads(line)
        except (json.JSONDecodeError, RecursionError) as e:
            reason = e.msg if isinstance(e, json.JSONDecodeError) else "nested too deeply"
            raise SublimError(
                f"{path}:{i}: not valid JSON ({reason}); each line must be one JSON object"
            ) from None


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


def out_problem(out: str | Path) -> str | None:
    """Why `out` cannot be an output dir, or None: an empty path (an unset shell variable; it would mean the
    current directory), or a path that resolves to the current directory, one of its parents, or the root.
    `--overwrite` would set aside everything there, the user's own files included."""
    if not str(out).strip():
        return "is empty: give an output dir (an unset shell variable, perhaps?)"
    try:
        where = Path(out).expanduser().resolve()
    except RuntimeError as e:  # "~nosuchuser/x": no such home directory
        return f"cannot be resolved ({e})"
    if where == Path(where.anchor) or _within(Path.cwd().resolve(), where):
        what = "the root" if where == Path(where.anchor) else "the current directory or a parent of it"
        return f"resolves to {where}, {what}; give a dir of its own for sublim's output, e.g. runs/NAME"
    return None


def out_argument(text: str) -> str:
    """`out_problem` as an argparse type for every command's --out (one line, before anything runs)."""
    import argparse

    problem = out_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(f"{text!r} {problem}")
    return text


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
    "complete" (same inputs, finished: nothing to do). `backup`: where this claim set the replaced output
    aside (`--overwrite`), removed by `done()`."""

    out: Path
    command: str
    identity: dict[str, Any]
    state: str
    previous: dict[str, Any] | None = None
    backup: Path | None = None

    def done(self) -> None:
        """Mark the output complete (its inputs and the sublim version are recorded in the stamp)."""
        _write_stamp(self.out, self.command, self.identity, complete=True)
        if self.backup is not None:  # only the backup this claim made
            shutil.rmtree(self.backup, ignore_errors=True)


def _read_stamp(out: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((out / STAMP).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
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


def _pending_backup(out: Path) -> bool:
    """An `--overwrite` run set the previous output aside in out/.sublim-replaced and was stopped before it
    wrote anything of its own (killed hard: no `except` ran), or while the move itself was under way (its
    stamp missing). The old output is then put back. Once the new run has written output, that output is
    kept so a re-run resumes it, and the old output stays in the backup (the next runs say where)."""
    replaced = out / _REPLACED
    if not replaced.is_dir() or replaced.is_symlink():
        return False
    stamp = _read_stamp(out)
    return stamp is None or (not stamp.get("complete") and not _entries(out))


def _view(out: Path) -> tuple[dict[str, Any] | None, list[Path]]:
    """(stamp, entries) of the output as the next run will find it: an interrupted `--overwrite` is undone
    first (see `_restore`), so its decisions are made on the previous output."""
    if not _pending_backup(out):
        return _read_stamp(out), _entries(out)
    replaced = out / _REPLACED
    restored = _entries(out) if _read_stamp(out) is None else []  # a restore cut short: already back
    return _read_stamp(replaced), sorted([*_entries(replaced), *restored])


def _restore(out: Path) -> None:
    """Put the output an unfinished `--overwrite` run set aside back in place, discarding that run's partial
    output. Safe to cut short at any point: the next run finishes the job (the partial output goes before
    its stamp; the backup's stamp comes back last)."""
    replaced = out / _REPLACED
    if _read_stamp(out) is not None or (out / STAMP).exists():
        for entry in _entries(out):
            _remove(entry)
        (out / STAMP).unlink(missing_ok=True)
    for entry in sorted(replaced.iterdir(), key=lambda p: p.name == STAMP):
        _remove(out / entry.name)
        os.replace(entry, out / entry.name)
    replaced.rmdir()


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
    earlier: bool = False,
) -> tuple[str, dict[str, Any] | None]:
    """("new" | "resume" | "complete" | "replace", previous identity) or a SublimError; touches nothing."""
    if out.exists() and not out.is_dir():
        raise SublimError(f"--out {out} is a file; give a directory")
    stamp, entries = _view(out)
    if stamp is None:
        if not entries:
            return "new", None
        if overwrite and (earlier or adopt):
            return "replace", None
        if adopt:
            return "resume", None
        raise SublimError(
            f"--out {out} already holds files sublim did not write here (e.g. {entries[0].name!r}); "
            "--overwrite replaces only sublim's own outputs: choose an empty --out, or move those files"
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

    fh = _open_lock_file(out / LOCK, "--out lock file")
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
    earlier: bool = False,
) -> str:
    """The checks of `claim_output` alone (nothing is written or locked): "new", "resume", "complete" or
    "replace", else a SublimError saying what to do."""
    problem = out_problem(out)
    if problem:
        raise SublimError(f"--out {str(out)!r} {problem}")
    check_separate(Path(out), inputs)
    identity = json.loads(json.dumps(identity, default=str))
    return _decide(
        Path(out),
        command,
        identity,
        overwrite=overwrite,
        accept_other=accept_other,
        adopt=adopt,
        earlier=earlier,
    )[0]


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
    earlier: bool = False,
) -> Iterator[Claim]:
    """Hold `out` for one writer: refuse an output that overlaps an input, a non-empty dir sublim did not
    write, another command's output, or a run with other inputs (unless `overwrite`; `accept_other` lets a
    caller that keys its own results, like the sweep, continue with other inputs; `adopt` takes over a dir
    with no record of its inputs, e.g. one an earlier sublim wrote; `earlier` lets `overwrite` replace such
    a dir, which the caller recognises as its command's output: a dir without sublim's stamp is otherwise
    never replaced, since it may hold the user's own files). All checks run before
    anything is written. Old contents replaced under `overwrite` are restored if the new run fails.
    Call `Claim.done()` when the output is complete."""
    identity = json.loads(json.dumps(identity, default=str))
    check_output(
        out,
        command,
        identity,
        inputs,
        overwrite=overwrite,
        accept_other=accept_other,
        adopt=adopt,
        earlier=earlier,
    )
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SublimError(f"cannot create --out {out}: {e.strerror or e}") from None
    fh = _lock(out)
    replaced = out / _REPLACED
    backup: Path | None = None
    try:
        if _pending_backup(out):
            _restore(out)
            print(
                f"sublim: {out}: an earlier --overwrite run was cut short before writing anything; the "
                f"output it had set aside in {replaced.name}/ is back in place",
                file=sys.stderr,
            )
        state, previous = _decide(
            out,
            command,
            identity,
            overwrite=overwrite,
            accept_other=accept_other,
            adopt=adopt,
            earlier=earlier,
        )
        if state == "replace":
            if replaced.exists() or replaced.is_symlink():
                raise SublimError(
                    f"--out {out}: {replaced} holds an older output an earlier --overwrite set aside; move "
                    "it elsewhere or delete it, then re-run (sublim deletes only backups it just made)"
                )
            replaced.mkdir()
            backup = replaced
            if (out / STAMP).exists():  # the stamp first: a cut-short move is then seen and undone
                os.replace(out / STAMP, replaced / STAMP)
            for entry in _entries(out):
                os.replace(entry, replaced / entry.name)
            state = "new"
        elif replaced.exists():
            print(
                f"sublim: note: {replaced} holds an output an earlier --overwrite replaced; delete it once "
                "you no longer need it",
                file=sys.stderr,
            )
        if state != "complete":
            _write_stamp(out, command, identity, complete=False)
        try:
            yield Claim(out, command, identity, state, previous, backup)
        except BaseException:
            if backup is not None and backup.is_dir() and not _entries(out):
                _restore(out)  # the new run stopped before writing anything: the old output comes back
            elif backup is not None and backup.is_dir():  # keep what it wrote, to resume; the old stays aside
                print(
                    f"sublim: {out}: the --overwrite run stopped; its partial output is kept (the same "
                    f"command resumes it) and the output it replaced is in {backup}",
                    file=sys.stderr,
                )
            elif state == "new" and not _entries(out) and not replaced.exists():
                # failed before writing anything (a bad flag only the loader sees): drop the claim, so
                # the fixed re-run is not refused as "other inputs"
                (out / STAMP).unlink(missing_ok=True)
            raise
    finally:
        fh.close()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
