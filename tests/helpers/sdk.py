"""Facts about the installed Anthropic SDK that tests branch on."""

from __future__ import annotations


def sdk_httpx():
    """Returns the HTTP library module the installed SDK uses (httpx for 0.x, httpx2 from 1.0)."""
    import anthropic._base_client as base

    return getattr(base, "httpx2", None) or base.httpx


def sdk_version() -> tuple:
    """Returns the installed SDK's version as a tuple of ints."""
    import anthropic

    return tuple(int(p) for p in anthropic.__version__.split(".")[:3] if p.isdigit())
