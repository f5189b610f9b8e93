"""The page's other judges (besides ImageReward), loaded on first use and kept; a judge that cannot be loaded
is remembered with its reason, so that a request names it instead of failing, and the page stays up."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Callable, Sequence

from ..errors import ImageRewardError
from ..judges import Judge, load_judge

log = logging.getLogger(__name__)

Loader = Callable[..., Judge]


class JudgePool:
    """Judges by name, each loaded once (thread-safe) with the same device, dtype and download root."""

    def __init__(
        self,
        names: Sequence[str],
        device: str | None = None,
        dtype: str | None = None,
        download_root: str | Path | None = None,
        loader: Loader | None = None,
    ) -> None:
        self.names = list(names)
        self._options = {"device": device, "dtype": dtype, "download_root": download_root}
        self._loader = loader or load_judge
        self._loaded: dict[str, Judge | str] = {}
        self._locks = {name: threading.Lock() for name in self.names}

    def get(self, name: str) -> Judge | str:
        """The judge, or one sentence saying why it is unavailable (the details go to the log)."""
        if name not in self._locks:
            return f"{name} is not offered here"
        with self._locks[name]:
            if name not in self._loaded:
                self._loaded[name] = self._load(name)
            return self._loaded[name]

    def _load(self, name: str) -> Judge | str:
        try:
            judge = self._loader(name, **self._options)
        except (ImageRewardError, OSError, ValueError, RuntimeError) as e:
            log.error("judge %s could not be loaded: %s", name, e)
            return f"{name} is unavailable right now (its weights could not be loaded)"
        return judge

    def split(self, names: Sequence[str]) -> tuple[dict[str, Judge], dict[str, str]]:
        """The judges `names` asks for: those loaded, by name, and those unavailable, with why (one sentence
        each); both in the order asked."""
        found = {name: self.get(name) for name in names}
        loaded = {name: judge for name, judge in found.items() if not isinstance(judge, str)}
        return loaded, {name: judge for name, judge in found.items() if isinstance(judge, str)}  # type: ignore[misc]

    def unavailable(self) -> dict[str, str]:
        """The judges found unavailable so far, with why (one sentence each)."""
        return {name: judge for name, judge in self._loaded.items() if isinstance(judge, str)}

    def preload(self) -> None:
        """Loads every judge now (on ZeroGPU, weights must be in place before the first GPU call)."""
        for name in self.names:
            self.get(name)

    def close(self) -> None:
        """Shuts down the loaded judges' own decoding threads and processes."""
        for judge in self._loaded.values():
            if not isinstance(judge, str):
                judge.close()
