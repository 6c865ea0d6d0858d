"""Admission of scoped invocations: which may run now under their scope's concurrency rules.

Every invocation of a scope lives in the scope's partition (its id's partition key is the
scope's), so admission is a local decision of that partition, made inside apply: the rules came
as a ``SetLimits`` command, and the queues and counters here are derived from the invocations'
statuses alone (rebuilt from them on recovery), so replaying the log decides the same.

A scope is a tree of at most three levels: the scope, the first component of the limit keys
used in it, and two-component keys. Each node counts the invocations of its subtree that hold a
slot (``usage``) and has the limit the most specific matching rule gives it (or none). An
invocation may run when every node on its path has room. Invocations that may not wait in their
own node (the one their limit key names), FIFO; an invocation woken from suspension or resumed
from pause keeps the place it first got (``queue_seq``), as Restate keeps a woken entry's key.

Who gets a freed slot: the oldest waiting invocation (smallest ``queue_seq``) that fits. Each node
keeps a heap of its children that have room and someone waiting, ordered by their oldest waiter,
so finding it walks one path down from the scope: O(depth · log k) where k counts the children
competing at a shared limit; a key blocked on its own limit (``tenant/*``) costs nothing while it
waits, and releasing its slot admits its next invocation without looking at any other key.
Entries that went stale (a waiter was killed, a node filled up) are dropped when they surface.

What holds a slot: a running invocation (including one backing off between retries). A
suspended or paused one does not (as in Restate: a suspended invocation waits for a
completion, not for the service), so it asks again when it wakes.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterator
from typing import NamedTuple

from engine.ids import scope_partition_key
from engine.limits.rules import LEVELS, Level, LimitRule, RuleIndex
from engine.partition.effects import Step
from engine.records import InvocationStatus

Run = Callable[[str, Step], None]  # start the admitted invocation, in the current step


class Node:
    __slots__ = (
        "parent", "children", "path", "usage", "limit", "rule", "fifo", "resumed", "waiting", "ready", "queued"
    )  # fmt: skip

    def __init__(self, parent: Node | None, path: tuple[str, ...], rules: RuleIndex) -> None:
        self.parent = parent
        self.children: dict[str, Node] = {}
        self.path = path  # (scope,), (scope, l1) or (scope, l1, l2)
        self.usage = 0
        self.limit: int | None = None
        self.rule: str | None = None
        self.fifo: deque[tuple[int, str]] = deque()  # (queue_seq, id) of new arrivals, oldest first
        self.resumed: list[tuple[int, str]] = []  # heap of woken invocations that had a place already
        self.waiting = 0  # live entries in fifo + resumed
        self.ready: list[tuple[int, int, Node]] = []  # heap: (oldest waiter, tie, child) with room
        self.queued: int | None = None  # the seq this node is queued with in its parent's heap
        self.apply(rules)

    def apply(self, rules: RuleIndex) -> None:
        found = rules.lookup(self.path)
        self.rule, self.limit = (None, None) if found is None else found

    def has_room(self) -> bool:
        return self.limit is None or self.usage < self.limit


class LimitUsage(NamedTuple):
    """One node as ``sys_user_limits`` shows it."""

    partition_key: int
    scope: str
    l1: str | None
    l2: str | None
    level: Level
    usage: int
    concurrency_limit: int | None
    rule_pattern: str | None
    available: int | None
    num_waiters: int


class Admission:
    def __init__(self, run: Run) -> None:
        self.version = 0  # of the rule book these rules came from
        self._rules = RuleIndex()
        self._run = run
        self._scopes: dict[str, Node] = {}
        self._holding: dict[str, Node] = {}
        self._waiting: dict[str, tuple[Node, int]] = {}
        self._ties = 0  # tie-breaker in the heaps (never decides: seqs are unique per waiter)
        self._seq_lsn = -1
        self._seq_count = 0

    # -- what the lifecycle asks ------------------------------------------------------------
    def request(self, status: InvocationStatus, lsn: int) -> bool:
        """Whether ``status`` may run now (then it holds a slot); otherwise it waits here, and is
        run (through ``run``) when a slot frees for it. ``lsn`` is the entry being applied."""
        assert status.scope is not None
        node = self._node(status.scope, status.limit_key)
        resumed = status.queue_seq != 0
        if not resumed:
            status.queue_seq = self._next_seq(lsn)
        if node.waiting == 0 and _fits(node):
            self._hold(status.id, node)
            return True
        self._park(status.id, status.queue_seq, node, resumed)
        return False

    def release(self, invocation_id: str, step: Step) -> None:
        """The invocation stops holding its slot (completed, suspended, paused, killed); the
        slot goes to the oldest waiter that now fits."""
        node = self._holding.pop(invocation_id, None)
        if node is None:
            return
        walk: Node | None = node
        while walk is not None:
            walk.usage -= 1
            walk = walk.parent
        if self._waiting:  # else nobody could take the slot: the common case without rules
            self._offer(node)
            self._pump(_root(node), step)
        self._prune(node)

    def withdraw(self, invocation_id: str) -> None:
        """A waiting invocation leaves its queue (killed, cancelled before it ran)."""
        entry = self._waiting.pop(invocation_id, None)
        if entry is not None:
            node = entry[0]
            node.waiting -= 1
            self._prune(node)

    def forget(self, invocation_id: str, step: Step) -> None:
        """The invocation completed: whatever it held or waited for is given up."""
        self.release(invocation_id, step)
        self.withdraw(invocation_id)

    def set_rules(self, version: int, rules: list[LimitRule], step: Step | None) -> None:
        """New rules: every node's limit is looked up again and, unless recovering (``step``
        None), waiting invocations that fit now are run."""
        self.version = version
        self._rules = RuleIndex(rules)
        for root in list(self._scopes.values()):
            nodes = list(_walk(root))
            for node in nodes:
                node.apply(self._rules)
            if step is not None:
                for node in reversed(nodes):
                    self._offer(node)
                self._pump(root, step)

    # -- recovery -------------------------------------------------------------------------------
    def restore_running(self, status: InvocationStatus) -> None:
        """A running invocation found on disk holds its slot again, whatever the limits."""
        assert status.scope is not None
        self._hold(status.id, self._node(status.scope, status.limit_key))

    def restore_waiting(self, statuses: list[InvocationStatus]) -> None:
        """Waiting invocations found on disk queue again in their order."""
        for status in sorted(statuses, key=lambda s: s.queue_seq):
            assert status.scope is not None
            self._park(status.id, status.queue_seq, self._node(status.scope, status.limit_key), False)

    # -- reading -------------------------------------------------------------------------------
    def usage(self) -> list[LimitUsage]:
        rows = []
        for root in self._scopes.values():
            for node in _walk(root):
                path = node.path
                rows.append(
                    LimitUsage(
                        scope_partition_key(path[0]),
                        path[0],
                        path[1] if len(path) > 1 else None,
                        path[2] if len(path) > 2 else None,
                        LEVELS[len(path) - 1],
                        node.usage,
                        node.limit,
                        node.rule,
                        None if node.limit is None else max(node.limit - node.usage, 0),
                        node.waiting,
                    )
                )
        return rows

    # -- the tree ------------------------------------------------------------------------------
    def _node(self, scope: str, limit_key: str | None) -> Node:
        node = self._scopes.get(scope)
        if node is None:
            node = self._scopes[scope] = Node(None, (scope,), self._rules)
        if limit_key is not None:
            for part in limit_key.split("/"):
                child = node.children.get(part)
                if child is None:
                    child = node.children[part] = Node(node, (*node.path, part), self._rules)
                node = child
        return node

    def _prune(self, node: Node | None) -> None:
        while node is not None and node.usage == 0 and node.waiting == 0 and not node.children:
            node.queued = None  # a heap entry that still names it is stale now
            parent = node.parent
            if parent is None:
                del self._scopes[node.path[0]]
            else:
                del parent.children[node.path[-1]]
            node = parent

    def _next_seq(self, lsn: int) -> int:
        # Ordered like the log, unique within an entry: deterministic, and survives restarts.
        if lsn != self._seq_lsn:
            self._seq_lsn, self._seq_count = lsn, 0
        self._seq_count += 1
        return (lsn << 32) + self._seq_count

    def _hold(self, invocation_id: str, node: Node) -> None:
        self._holding[invocation_id] = node
        walk: Node | None = node
        while walk is not None:
            walk.usage += 1
            walk = walk.parent

    def _park(self, invocation_id: str, seq: int, node: Node, resumed: bool) -> None:
        if resumed:
            heapq.heappush(node.resumed, (seq, invocation_id))
        else:
            node.fifo.append((seq, invocation_id))
        node.waiting += 1
        self._waiting[invocation_id] = (node, seq)
        self._offer(node)

    # -- who is next ---------------------------------------------------------------------------
    def _own_head(self, node: Node) -> int | None:
        """The seq of the oldest live waiter of the node itself (stale heads dropped)."""
        waiting = self._waiting
        while node.resumed and waiting.get(node.resumed[0][1]) != (node, node.resumed[0][0]):
            heapq.heappop(node.resumed)
        while node.fifo and waiting.get(node.fifo[0][1]) != (node, node.fifo[0][0]):
            node.fifo.popleft()
        heads = [entry[0][0] for entry in (node.resumed, node.fifo) if entry]
        return min(heads) if heads else None

    def _ready_head(self, node: Node) -> int | None:
        """The seq of the oldest waiter among the children that have room (stale entries fixed)."""
        ready = node.ready
        while ready:
            seq, _, child = ready[0]
            if child.queued == seq and child.has_room():
                best = self._oldest(child)
                if best == seq:
                    return seq
                heapq.heappop(ready)
                child.queued = None
                if best is not None:
                    self._queue(child, best)
                continue
            heapq.heappop(ready)
            if child.queued == seq:
                child.queued = None
        return None

    def _oldest(self, node: Node) -> int | None:
        own, below = self._own_head(node), self._ready_head(node)
        if own is None or below is None:
            return own if below is None else below
        return min(own, below)

    def _queue(self, child: Node, seq: int) -> None:
        assert child.parent is not None
        self._ties += 1
        heapq.heappush(child.parent.ready, (seq, self._ties, child))
        child.queued = seq

    def _offer(self, node: Node) -> None:
        """``node`` got a waiter or room: make sure it, and each ancestor, is queued in its
        parent's heap while it has room and someone waiting."""
        while node.parent is not None:
            if not node.has_room():
                return
            best = self._oldest(node)
            if best is None:
                return
            if node.queued is None or node.queued > best:
                self._queue(node, best)
            node = node.parent

    def _pump(self, root: Node, step: Step) -> None:
        """Run the oldest waiters that fit, while the scope has room."""
        while root.has_room():
            picked = self._take(root)
            if picked is None:
                return
            invocation_id, node = picked
            del self._waiting[invocation_id]
            node.waiting -= 1
            self._hold(invocation_id, node)
            self._offer(node)
            self._run(invocation_id, step)

    def _take(self, node: Node) -> tuple[str, Node] | None:
        """Pop the oldest waiter below ``node`` (which has room) whose path has room."""
        own, below = self._own_head(node), self._ready_head(node)
        if own is not None and (below is None or own < below):
            if node.resumed and node.resumed[0][0] == own:
                return heapq.heappop(node.resumed)[1], node
            return node.fifo.popleft()[1], node
        if below is None:
            return None
        _, _, child = heapq.heappop(node.ready)
        child.queued = None
        return self._take(child)


def _fits(node: Node | None) -> bool:
    while node is not None:
        if not node.has_room():
            return False
        node = node.parent
    return True


def _root(node: Node) -> Node:
    while node.parent is not None:
        node = node.parent
    return node


def _walk(node: Node) -> Iterator[Node]:
    """The node and its descendants, parents first (in insertion order: deterministic)."""
    yield node
    for child in node.children.values():
        yield from _walk(child)

