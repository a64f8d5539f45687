"""A local Anthropic Messages API simulator with named fault profiles, for tests, demos and rehearsals."""

from .faults import PROFILES, Fault, Profile
from .server import RequestRecord, Simulator

__all__ = ["Simulator", "Fault", "PROFILES", "Profile", "RequestRecord"]
