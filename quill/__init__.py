"""quill: a durable-execution server, wire-compatible with Restate."""

__version__ = "0.1.0"
