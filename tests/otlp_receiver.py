"""Old name of tests.helpers.otlp, kept while callers move over."""

from tests.helpers.otlp import *  # noqa: F401,F403
from tests.helpers.otlp import GrpcReceiver, HttpReceiver, Received, attrs, closed_endpoint  # noqa: F401
