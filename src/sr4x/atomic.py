"""Write-temp-then-replace for every file a stage writes.

A reader (or a later `dvc repro`) sees either the old file or the complete new one, never a
partial file, even if the process is killed mid-write.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class OutputError(OSError):
    """An output could not be written (a full disk, no permission): names the file and the cause."""


# Errors that mean the file system cannot store the output (a source that fails to read is not one).
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}


def _storage_cause(err: BaseException) -> OSError | None:
    """The storage OSError behind `err`: itself, or one it was raised from or while handling.

    torch.save, for one, reports a full disk as a RuntimeError raised while handling the OSError.
    """
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in STORAGE_ERRNOS:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _temporary_prefix(target: Path) -> str:
    return f".{target.name}."


def stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """The temporary files `atomic_path` made for `path` and a killed process left behind (kill -9 runs no cleanup).

    Only call it where no other process is writing `path`.
    """
    target = Path(path)
    if not target.parent.is_dir():
        return []
    prefix = _temporary_prefix(target)
    return sorted(p for p in target.parent.iterdir()
                  if p.name.startswith(prefix) and p.name.endswith(".tmp") and "." not in p.name[len(prefix):-4])


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success fsync it and `os.replace` it over `path`.

    On error the temporary file is removed and `path` is left untouched; an error caused by the
    storage (a full disk, a quota, a read-only file system) is raised as an `OutputError` that
    names `path` and the cause.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=_temporary_prefix(target), suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make outputs private
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        cause = _storage_cause(err)
        if cause is not None and not isinstance(err, OutputError):
            raise OutputError(cause.errno, f"could not write {target}: {cause.strerror or cause}") from err
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically write `text` to `path`."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Atomically write `data` as indented JSON with a trailing newline."""
    write_text(path, json.dumps(data, indent=2) + "\n")


def torch_save(path: str | os.PathLike, obj: Any) -> None:
    """Atomically `torch.save` `obj` to `path`."""
    import torch

    # Through a file object, so the zip's inner folder is "archive", not the random temp name:
    # the same object always gives the same bytes (and DVC hash).
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside `path`; on success it replaces `path` (and whatever was there).

    On error the temporary folder is removed and `path` is left as it was: a failed stage writes nothing.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_temporary_prefix(target), suffix=".tmp", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would make the output private
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
