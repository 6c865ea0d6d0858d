"""Cluster mode (``quill serve --cluster nats://…``): quill nodes sharing a replicated log.

Each partition's log is a NATS JetStream stream (``engine.log``). One node leads a partition at a
time (a lease; its revision is the epoch) and appends every group commit as one record before it
writes its local RocksDB, which is a cache rebuilt from a snapshot and the log. Every node serves
the ingress and the admin API, forwarding to partition leaders over NATS request/reply.
"""
