"""quill: a durable-execution server, wire-compatible with Restate."""

from importlib import metadata

__version__ = metadata.version("quill")
