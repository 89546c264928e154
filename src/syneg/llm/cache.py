"""A persistent cache of LLM answers in SQLite, keyed by backend, model, prompt, parameters and seed.

Only answers that parsed and validated are stored, so failures are asked again on the next run. Each
answer is committed as soon as it arrives (WAL mode), so a run killed at any moment loses at most the
request in flight, and a rerun asks the backend nothing it has already answered.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from syneg.data.storage import StorageError, storage_error
from syneg.llm.base import Completion
from syneg.locations import default_cache_dir


# SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN: the machine refuses, the cache is not at fault.
SQLITE_STORAGE_ERRORS = {8, 10, 13, 14}


def default_llm_cache_path() -> Path:
    """``<cache root>/llm-cache.sqlite``, the root being ``$SYNEG_CACHE_DIR`` or ``~/.cache/syneg``."""
    return default_cache_dir() / "llm-cache.sqlite"


class RequestCache:
    """Completions by request key.

    Example::

        >>> import tempfile, os
        >>> cache = RequestCache(os.path.join(tempfile.mkdtemp(), "llm.sqlite"))
        >>> cache.put("k", Completion(text='{"a": 1}', completion_tokens=5))
        >>> cache.get("k").text, cache.get("k").cached, cache.get("other")
        ('{"a": 1}', True, None)
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_llm_cache_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            with self._storage_errors():
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS completions (key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)"
                )
            os.utime(self.path)  # marks the last use, which `syneg cache prune --older-than` reads
        except OSError as error:
            raise storage_error(error, self.path) from None

    @contextmanager
    def _storage_errors(self) -> Iterator[None]:
        """A full disk or a read-only folder as one line naming the cache, not SQLite's "disk I/O error" alone."""
        try:
            yield
        except sqlite3.OperationalError as error:
            if (getattr(error, "sqlite_errorcode", 0) & 0xFF) in SQLITE_STORAGE_ERRORS:  # extended codes: the primary in the low byte
                raise StorageError(f"{self.path}: cannot write the LLM request cache ({error})") from None
            raise

    def get(self, key: str) -> Completion | None:
        row = self._db.execute("SELECT value FROM completions WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        completion = Completion(**json.loads(row[0]))
        completion.cached = True
        return completion

    def put(self, key: str, completion: Completion) -> None:
        value = completion.to_dict()
        value["cached"] = False
        with self._storage_errors():
            self._db.execute(
                "INSERT OR REPLACE INTO completions (key, value, created) VALUES (?, ?, ?)",
                (key, json.dumps(value), time.time()),
            )

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM completions").fetchone()[0]

    def close(self) -> None:
        self._db.close()
