"""An on-disk cache of text embeddings, keyed by model fingerprint and by the text itself.

Each model gets a folder of shards (``NNNNNN.npy`` beside ``NNNNNN.keys``, one sha1 of the text per
row). Keys are per text, so an edited corpus re-encodes only the changed documents, and shards are
written while encoding proceeds, so a killed run resumes from the last shard written.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from syneg.data.storage import process_alive
from syneg.locations import default_cache_dir as default_cache_dir  # re-exported: syneg.doctor reads it here

logger = logging.getLogger(__name__)

EMBEDDINGS_FOLDER = "embeddings"


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Embeddings of one model, looked up by text.

    Example::

        >>> import tempfile, numpy as np
        >>> cache = EmbeddingCache(tempfile.mkdtemp(), "toy-model")
        >>> cache.put(["a", "b"], np.eye(2, dtype=np.float32))
        >>> cache.get(["b", "c"])[1]
        [1]
    """

    def __init__(self, root: str | Path, model_fingerprint: str) -> None:
        self.folder = Path(root) / EMBEDDINGS_FOLDER / model_fingerprint
        self.folder.mkdir(parents=True, exist_ok=True)
        os.utime(self.folder)  # marks the last use, which `syneg cache prune --older-than` reads
        self._rows: dict[str, tuple[int, int]] = {}
        self._shards: list[np.ndarray] = []
        self._remove_stale_shards()
        for keys_path in sorted(self.folder.glob("*.keys")):
            vectors_path = keys_path.with_suffix(".npy")
            try:
                vectors = np.load(vectors_path, mmap_mode="r")
                keys = keys_path.read_text().split()
            except (OSError, ValueError):
                logger.warning("Ignoring unreadable embedding-cache shard %s.", vectors_path)
                continue
            if len(keys) != len(vectors):
                logger.warning("Ignoring embedding-cache shard %s: %d keys for %d rows.", vectors_path, len(keys), len(vectors))
                continue
            shard = len(self._shards)
            self._shards.append(vectors)
            for row, key in enumerate(keys):
                self._rows[key] = (shard, row)

    def _remove_stale_shards(self) -> None:
        """Delete what a killed writer left: vectors whose keys were never written, and keys half-written.
        A shard's name holds its writer's process id; a living writer's files are left alone."""
        for path in [*self.folder.glob("*.keys.tmp"), *self.folder.glob("*.npy")]:
            shard = path.name.partition(".")[0]
            if path.suffix == ".npy" and (self.folder / f"{shard}.keys").exists():
                continue
            pid = shard.split("-")[1] if shard.count("-") >= 2 else ""
            if pid.isdigit() and not process_alive(int(pid)):
                path.unlink(missing_ok=True)

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, texts: list[str]) -> tuple[dict[int, np.ndarray], list[int]]:
        """Cached vectors by position in ``texts``, and the positions that are missing."""
        found: dict[int, np.ndarray] = {}
        missing: list[int] = []
        for position, text in enumerate(texts):
            location = self._rows.get(text_key(text))
            if location is None:
                missing.append(position)
            else:
                shard, row = location
                found[position] = self._shards[shard][row]
        return found, missing

    def put(self, texts: list[str], vectors: np.ndarray) -> None:
        """Store one shard. The keys file is written last, so a shard half-written is never read."""
        if not texts:
            return
        keys = [text_key(t) for t in texts]
        name = f"{len(list(self.folder.glob('*.keys'))):06d}-{os.getpid()}-{keys[0][:8]}"
        vectors_path = self.folder / f"{name}.npy"
        np.save(vectors_path, np.ascontiguousarray(vectors, dtype=np.float32))
        temporary = self.folder / f"{name}.keys.tmp"
        temporary.write_text("\n".join(keys))
        temporary.replace(self.folder / f"{name}.keys")
        shard = len(self._shards)
        self._shards.append(np.load(vectors_path, mmap_mode="r"))
        for row, key in enumerate(keys):
            self._rows[key] = (shard, row)
