"""A local Anthropic Messages API simulator with named fault profiles, for tests, demos and rehearsals."""

from .faults import PROFILES, Fault
from .server import RequestRecord, Simulator

__all__ = ["Simulator", "Fault", "PROFILES", "RequestRecord"]
