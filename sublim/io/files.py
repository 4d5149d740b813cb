"""Files sublim reads and writes: atomic writes (readers never see half a file), JSON that is always valid,
a lock for work that several processes may start at once (`file_lock`, waits), checked reads of regular UTF-8
files, and the package versions a run card records."""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
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


def output_file_problem(path: str | Path, *, overwrite: bool = False) -> str | None:
    """Why `path` cannot take a new output file, in words (None when it can): it exists (without
    `overwrite`) or is no regular file, or its folder is missing or not writable. Checked before a model
    loads, so a typo costs no model time."""
    where = Path(path).expanduser()
    if where.exists() or where.is_symlink():
        problem = file_problem(where)
        if problem:
            return problem
        return None if overwrite else "exists: pass --overwrite to replace it"
    folder = where.parent
    if not folder.is_dir():
        return f"is in {str(folder)!r}, which is no folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"is in {str(folder)!r}, which is not writable"
    return None


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
