"""Reading and writing syneg's files so that every failure names the file: YAML read with its errors
as :class:`~syneg.data.errors.DataError`, and whole files replaced atomically, so that a full disk
or a kill mid-write leaves the previous version in place instead of a truncated one."""

from __future__ import annotations

import errno
import glob
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import yaml

from syneg.data.errors import DataError

# What the machine, not the input, refuses: the CLI maps these to one line and exit code 2.
STORAGE_ERRORS = {errno.ENOSPC: "no space left on the device", errno.EFBIG: "file too large for this system or limit",
                  errno.EDQUOT: "disk quota exceeded", errno.EROFS: "read-only file system",
                  errno.EACCES: "permission denied", errno.EPERM: "operation not permitted"}


class StorageError(DataError):
    """A file syneg cannot read or write (full disk, file-size limit, read-only folder, no permission)."""


def storage_error(error: OSError, path: str | Path | None = None, doing: str | None = "write") -> StorageError:
    """The one-line error for an OSError, naming the file (``path`` when the error does not)."""
    where = path if path is not None else error.filename
    reason = STORAGE_ERRORS.get(error.errno or 0) or error.strerror or str(error)
    if where is None:
        return StorageError(f"cannot {doing or 'write'} a file ({reason})")
    return StorageError(f"{where}: cannot {doing} ({reason})" if doing else f"{where}: {reason}")


def read_yaml(path: str | Path, what: str = "file") -> Any:
    """The YAML document of ``path``; a missing or unreadable file, bytes that are not UTF-8 and invalid
    or absurdly nested YAML are DataErrors naming the file (and the line where YAML knows it)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, where a {what} was expected") from None
    except OSError as error:
        raise storage_error(error, path, "read") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 text ({error.reason} at byte {error.start + 1})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise DataError(f"{path}: not valid YAML: {error}") from None
    except RecursionError:
        raise DataError(f"{path}: YAML nested too deeply") from None


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (one of another user counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(path: Path) -> None:
    """Remove the temporary files of ``path`` left by writers that were killed (the temporary name holds
    the writer's process id); a living writer's file is left alone."""
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = stale.name[len(path.name) + 2 : -len(".tmp")]
        if pid.isdigit() and not process_alive(int(pid)):
            stale.unlink(missing_ok=True)


@contextmanager
def atomic_writer(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """A handle on a temporary file beside ``path`` that replaces it when the block ends without error:
    until then the previous version stays whole. An OSError is a :class:`StorageError` naming ``path``."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        with temporary.open(mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:
        raise storage_error(error, path) from None
    finally:
        temporary.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Replace ``path``'s content with ``text`` atomically (see :func:`atomic_writer`)."""
    with atomic_writer(path) as handle:
        handle.write(text)
