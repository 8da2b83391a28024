"""Prometheus and OpenTelemetry metrics for procman trees."""
