"""claude-otel: OpenTelemetry metrics and traces for the Anthropic SDK, built for timeouts.

    from claude_otel import ClaudeInstrumentor
    ClaudeInstrumentor().instrument()          # providers from the OpenTelemetry globals

or, with exporters (OTLP, Prometheus) set up from the environment:

    import claude_otel
    claude_otel.configure()
"""

from .instrumentor import ClaudeInstrumentor
from .version import __version__

__all__ = ["ClaudeInstrumentor", "configure", "__version__"]


def configure(*args, **kwargs):
    """Returns a handle after setting up providers, exporters and instrumentation (see claude_otel._configuration)."""
    from ._configuration import configure as _configure

    return _configure(*args, **kwargs)
