"""A request cache that many processes on many machines write at once: one shard file per writer.

SQLite serializes writers with file locks, which network file systems (NFS, most cluster mounts) do
not honour, so a Ray job whose workers record LLM answers would corrupt it or stall. Here each writer
(a process) appends to a file of its own, ``<host>-<pid>-<random>.jsonl``, one JSON line an answer
keyed by the request's hash (:meth:`syneg.llm.ChatRequest.cache_key`), flushed as it is written; no
file is ever written by two processes, so no lock is needed. Readers load every shard of the folder
together; a torn last line (a writer killed mid-write) is skipped, and the same key in two shards
holds the same answer (the request fixes it), so which one wins does not matter.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from pathlib import Path
from typing import IO

from syneg.data.storage import storage_error
from syneg.llm.base import Completion
from syneg.locations import default_cache_dir


def default_sharded_cache_path() -> Path:
    """``<cache root>/llm-cache.shards``, beside the SQLite cache of the local path."""
    return default_cache_dir() / "llm-cache.shards"


class ShardedRequestCache:
    """Completions by request key in a folder of per-writer shards; the interface of :class:`RequestCache`.

    Example::

        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> one, two = ShardedRequestCache(folder), ShardedRequestCache(folder)  # two writers
        >>> one.put("k1", Completion(text="a")); two.put("k2", Completion(text="b"))
        >>> reader = ShardedRequestCache(folder)
        >>> reader.get("k1").text, reader.get("k2").text, len(reader)
        ('a', 'b', 2)
    """

    def __init__(self, folder: str | Path | None = None, read: bool = True) -> None:
        self.path = Path(folder) if folder is not None else default_sharded_cache_path()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise storage_error(error, self.path) from None
        self._entries: dict[str, dict] = {}
        self._read: dict[Path, int] = {}  # bytes of each shard read so far
        self._shard: IO[str] | None = None
        if read:  # a writer alone (a Ray actor recording answers) need not load what the others wrote
            self.refresh()

    def refresh(self) -> None:
        """Read what other writers added since the last read (only the new bytes of each shard)."""
        for shard in sorted(self.path.glob("*.jsonl")):
            with shard.open("rb") as file:
                file.seek(self._read.get(shard, 0))
                data = file.read()
            end = data.rfind(b"\n") + 1  # a line still being written is read on a later refresh
            for line in data[:end].splitlines():
                try:
                    entry = json.loads(line)
                    self._entries[entry["key"]] = entry["value"]
                except (ValueError, KeyError, TypeError):
                    continue  # a line torn by a killed writer, completed by nothing
            self._read[shard] = self._read.get(shard, 0) + end

    def get(self, key: str) -> Completion | None:
        value = self._entries.get(key)
        if value is None:
            return None
        return Completion(**(value | {"cached": True}))

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def put(self, key: str, completion: Completion) -> None:
        """Append to this writer's own shard (opened on the first write), unless the key is known."""
        if key in self._entries:
            return
        value = completion.to_dict() | {"cached": False}
        try:
            if self._shard is None:
                name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
                self._shard = (self.path / name).open("a", encoding="utf-8")
            self._shard.write(json.dumps({"key": key, "value": value}) + "\n")
            self._shard.flush()
        except OSError as error:
            raise storage_error(error, self.path) from None
        self._entries[key] = value

    def __len__(self) -> int:
        return len(self._entries)

    def close(self) -> None:
        if self._shard is not None:
            self._shard.close()
            self._shard = None
