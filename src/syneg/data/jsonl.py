"""Line-numbered jsonl reading: every error names the file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from syneg.data.errors import DataError
from syneg.data.storage import storage_error


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` for each non-blank line; bad JSON or a non-object line is a DataError."""
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
                raise DataError(f"{path}:{line_number}: not UTF-8 text ({error.reason} at byte {error.start + 1})") from None
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
