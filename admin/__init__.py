"""quill's admin API (port 9070): deployments, services, health."""

from admin.app import create_admin_app, render_admin_error

__all__ = ["create_admin_app", "render_admin_error"]
