"""Shared test helpers, imported as `tests.helpers.<module>` (pyproject's pytest `pythonpath` puts the repository
root on sys.path): `env` (a scrubbed child environment), `ports` (ports bound by the server itself, read back),
`procs` (children with deadlines on every read and wait), `require` (skip locally, fail in CI), `prometheus`
(a real Prometheus server), `otlp` (a real OTLP receiver), `app` (the instrumented test app), `sdk`.

Nothing here imports a heavy optional package at import time of this package: the SDK matrix venvs install only
the project, the SDK and pytest.
"""
