"""How Dapr actors are named on the engine: an actor ``(type, id)`` is the object key
``("dapr-actor:" + type, id)``, and a method call is an invocation of its handler ``method``."""

from __future__ import annotations

from engine.records import Target

ACTOR_PREFIX = "dapr-actor:"
DEACTIVATE = "__deactivate"  # the handler name of an idle actor's deactivation turn

__all__ = ["ACTOR_PREFIX", "DEACTIVATE", "actor_target", "is_actor"]


def actor_target(actor_type: str, actor_id: str, method: str) -> Target:
    return Target(ACTOR_PREFIX + actor_type, method, actor_id)


def is_actor(target: Target) -> bool:
    return target.service.startswith(ACTOR_PREFIX)
