"""A stand-in for Hugging Face's `spaces` package, for the app tests: `spaces.GPU` behaves as ZeroGPU does at
its boundary (the arguments and the result cross by pickle, an exception too) and records each call with the
duration it asked for in the file named by `SPACES_STUB_LOG`."""

from __future__ import annotations

import json
import os
import pickle


def _log(entry: dict) -> None:
    path = os.environ.get("SPACES_STUB_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")


def GPU(task=None, *, duration=60, size="large"):  # noqa: N802 (the real package's name)
    def decorate(fn):
        def wrapper(*args, **kwargs):
            seconds = duration(*args, **kwargs) if callable(duration) else duration
            args, kwargs = pickle.loads(pickle.dumps((args, kwargs)))
            try:
                result = fn(*args, **kwargs)
            except Exception as e:
                _log({"function": fn.__name__, "duration": seconds, "raised": type(e).__name__})
                raise pickle.loads(pickle.dumps(e)) from None
            _log({"function": fn.__name__, "duration": seconds})
            return pickle.loads(pickle.dumps(result))

        return wrapper

    return decorate(task) if callable(task) else decorate


_log({"imported": True})
