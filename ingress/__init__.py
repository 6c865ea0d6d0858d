"""quill's ingress: Restate's HTTP invocation API as a plain ASGI application."""

from ingress.app import IngressApp

__all__ = ["IngressApp"]
