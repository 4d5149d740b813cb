"""The output guard every writing command uses (`claim_output`): no overlap with inputs, no silent
overwrite, one writer at a time, a stamp recording the inputs an output was made from; `out_argument` checks
an --out before anything runs."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sublim.errors import SublimError
from sublim.io.files import _open_lock_file, package_versions, write_json

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
            backup = _set_aside(out, replaced)
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
            _after_failure(out, state, backup)
            raise
    finally:
        fh.close()


def _set_aside(out: Path, replaced: Path) -> Path:
    """--overwrite: move the old output into `replaced` (the stamp first, so a cut-short move is seen and
    undone), refusing when an older backup is still there."""
    if replaced.exists() or replaced.is_symlink():
        raise SublimError(
            f"--out {out}: {replaced} holds an older output an earlier --overwrite set aside; move "
            "it elsewhere or delete it, then re-run (sublim deletes only backups it just made)"
        )
    replaced.mkdir()
    if (out / STAMP).exists():
        os.replace(out / STAMP, replaced / STAMP)
    for entry in _entries(out):
        os.replace(entry, replaced / entry.name)
    return replaced


def _after_failure(out: Path, state: str, backup: Path | None) -> None:
    """What a run that stopped leaves: the old output back if it wrote nothing, else its partial output kept
    (to resume) with the old one aside; a fresh claim that wrote nothing is dropped."""
    if backup is not None and backup.is_dir() and not _entries(out):
        _restore(out)  # the new run stopped before writing anything: the old output comes back
    elif backup is not None and backup.is_dir():  # keep what it wrote, to resume; the old stays aside
        print(
            f"sublim: {out}: the --overwrite run stopped; its partial output is kept (the same "
            f"command resumes it) and the output it replaced is in {backup}",
            file=sys.stderr,
        )
    elif state == "new" and not _entries(out) and not (out / _REPLACED).exists():
        # failed before writing anything (a bad flag only the loader sees): drop the claim, so
        # the fixed re-run is not refused as "other inputs"
        (out / STAMP).unlink(missing_ok=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
