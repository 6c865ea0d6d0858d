"""quill's admin API (port 9070): deployments, services, health.

``create_admin_app`` resolves lazily (PEP 562): importing ``admin.errors`` for the error shape
must not import FastAPI, which is most of quill's import time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from admin.app import create_admin_app

__all__ = ["create_admin_app"]


def __getattr__(name: str) -> Any:
    if name == "create_admin_app":
        from admin.app import create_admin_app

        return create_admin_app
    raise AttributeError(f"module 'admin' has no attribute {name!r}")
