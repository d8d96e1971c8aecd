"""Run data for other systems: tables (``chronum export``), Prometheus metrics (``/metrics``
on ``chronum serve``) and OpenTelemetry traces (the ``otel`` event subscriber).

Each needs its own extra (``parquet``, ``serve``, ``otel``), imported only by the function
that uses it, so nothing here weighs on ``import chronum`` or ``chronum run``.
"""
