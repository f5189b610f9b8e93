"""A bounded cache of image embeddings keyed by image content.

Scoring the same images again with another prompt (what app users do all the time) then skips the
image encoder, which is nearly all of the compute.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import torch


class EmbeddingCache:
    """Least-recently-used map from `decoding.content_key` to a judge's per-image features, thread-safe.

    Args:
        max_entries: how many images to keep; 0 disables the cache. An entry of ImageReward's ViT-L holds
            its 197 x 1024 tokens (about 0.8 MB in float32, 0.4 MB in half precision); a CLIP-like judge's, one
            projected feature (a few kB).
    """

    def __init__(self, max_entries: int = 256) -> None:
        if max_entries < 0:
            raise ValueError(f"max_entries must be >= 0, got {max_entries}")
        self.max_entries = max_entries
        self._items: OrderedDict[bytes, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: bytes) -> torch.Tensor | None:
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: bytes, value: torch.Tensor) -> None:
        if self.max_entries == 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def resize(self, max_entries: int) -> None:
        """Changes the bound, dropping the oldest entries if needed (0 empties and disables it)."""
        if max_entries < 0:
            raise ValueError(f"max_entries must be >= 0, got {max_entries}")
        with self._lock:
            self.max_entries = max_entries
            while len(self._items) > max_entries:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.hits = self.misses = 0
