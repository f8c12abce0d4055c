"""Static observability artifacts: the Grafana dashboard and the Prometheus alert rules.

Both are generated from Python (one source) into the Helm chart, so the chart ships exactly what
the tests check: ``python -m selftaught.observability`` rewrites them, and a test fails when the
committed files differ from the builders' output. This package imports no kopf or kubernetes;
only :mod:`selftaught.observability.dashboard` needs ``grafana-foundation-sdk`` (a dev
dependency), and it is imported lazily so the operator image does not carry it.
"""
