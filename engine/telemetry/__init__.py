"""Observability: metrics (Prometheus), traces (OpenTelemetry, only when configured) and logs."""
