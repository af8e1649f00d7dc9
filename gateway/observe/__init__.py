"""Seeing what happens: request logs, Prometheus metrics, OpenTelemetry spans and the flow trace."""
