"""The version quill reports (``GET /version``, ``created_using_restate_version``)."""

from __future__ import annotations

from importlib import metadata

SERVER_VERSION = metadata.version("quill")
