"""Old name of tests.helpers.prometheus, kept while callers move over."""

from tests.helpers.ports import _legacy_free_port as free_port  # noqa: F401
from tests.helpers.prometheus import PrometheusServer as _Server
from tests.helpers.prometheus import require_prometheus  # noqa: F401
from tests.helpers.require import require_tool  # noqa: F401


class PrometheusServer(_Server):
    """tests.helpers.prometheus.PrometheusServer, also taking the old `targets=` name."""

    def __init__(self, targets=(), **kwargs) -> None:
        super().__init__(scrape_targets=kwargs.pop("scrape_targets", targets), **kwargs)
