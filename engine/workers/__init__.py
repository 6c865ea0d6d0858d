"""Partitions spread over N worker processes on one machine (``quill serve --workers N``).

Worker k owns the partitions ``p`` with ``p % N == k``, each worker with its own store, group
commit, invoker, timers and sweeper. Requests for another worker's partition, messages between
partitions of different workers, and metadata changes travel between workers over local sockets
in compact msgspec frames (``rpc``); one process is still one asyncio loop.
"""
