"""Run data for other systems: tables (``chronum export``), Prometheus metrics (``/metrics``
on ``chronum serve``) and OpenTelemetry traces (the ``otel`` event subscriber).

Parquet and Prometheus need their extras (``parquet``, ``serve``), imported only by the
function that uses it, so nothing here weighs on ``import chronum`` or ``chronum run``; the
OpenTelemetry subscriber speaks OTLP/HTTP with the standard library.
"""
