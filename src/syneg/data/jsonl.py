"""Line-numbered jsonl reading: every error names the file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from syneg.data.errors import DataError
from syneg.data.storage import storage_error


def read_jsonl(path: str | Path, repaired: list[int] | None = None) -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` for each non-blank line; bad JSON or a non-object line is a DataError.

    Bytes that are not UTF-8 are a DataError too, unless ``repaired`` is given: then they are read as U+FFFD
    and the line's number is appended to it (a corpus scraped from the web has such lines; a file of syneg's
    own never does)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        handle = path.open("rb")
    except OSError as error:
        raise storage_error(error, path, "read") from None
    with handle:  # decoded line by line, so that a non-UTF-8 byte is named by its line
        for line_number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                if repaired is None:
                    raise DataError(f"{path}:{line_number}: not UTF-8 text ({error.reason} at byte {error.start + 1})") from None
                line = raw.decode("utf-8", errors="replace")
                repaired.append(line_number)
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{path}:{line_number}: invalid JSON ({error.msg} at column {error.colno})") from None
            except RecursionError:
                raise DataError(f"{path}:{line_number}: JSON nested too deeply") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}:{line_number}: expected a JSON object, got {type(record).__name__}")
            yield line_number, record
