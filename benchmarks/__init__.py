"""Benchmark harness: quill vs. the real Restate server (see README.md)."""
