"""Old name of tests.helpers.prometheus, kept while callers move over."""

from tests.helpers.ports import _legacy_free_port as free_port  # noqa: F401
from tests.helpers.prometheus import *  # noqa: F401,F403
from tests.helpers.prometheus import PrometheusServer, PrometheusUnavailable, scrapes_to_openmetrics, tool  # noqa: F401
