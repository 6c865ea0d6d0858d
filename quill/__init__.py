"""quill: a durable-execution server, wire-compatible with Restate."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # Lazily (PEP 562): importlib.metadata costs a tenth of a second at every start-up.
    if name == "__version__":
        from importlib import metadata

        return metadata.version("quill")
    raise AttributeError(f"module 'quill' has no attribute {name!r}")
