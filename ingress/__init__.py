"""quill's ingress: Restate's HTTP invocation API as a plain ASGI application."""

from ingress.app import IngressApp
from ingress.responses import render_ingress_error

__all__ = ["IngressApp", "render_ingress_error"]
