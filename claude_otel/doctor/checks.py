"""The doctor's checks: one function each, returning a Result with the reason and the fix.

They turn the "Request timed out" checklist into answers: which SDK and
timeout the app really runs with, whether a request must stream, whether a
proxy's idle timeout undercuts the SDK's, and how long DNS, TCP and TLS take to
the API.  Network checks touch only the base URL's host.
"""

from __future__ import annotations

import os
import socket
import ssl
import time
from dataclasses import asdict, dataclass
from typing import List, Optional
from urllib.parse import urlparse

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"
DEFAULT_BASE_URL = "https://api.anthropic.com"


@dataclass
class Result:
    """One check's verdict."""

    name: str
    status: str
    reason: str
    fix: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def _version_tuple(version: str) -> tuple:
    return tuple(int(p) if p.isdigit() else 0 for p in version.split(".")[:3])


def sdk_version() -> Result:
    """Returns the installed SDK version and which timeout-relevant features it predates."""
    try:
        import anthropic
    except ImportError:
        return Result("sdk", FAIL, "the anthropic SDK is not installed", "pip install anthropic")
    version = anthropic.__version__
    v = _version_tuple(version)
    notes = []
    if v < (0, 108):
        notes.append("no per-attempt Middleware API (0.108)")
    if v < (1, 0):
        notes.append("still on httpx (httpx2 from 1.0)")
    if v < (1, 14):
        notes.append("no built-in OpenTelemetry call span (1.14) — claude-otel starts its own")
    status = WARN if v < (0, 40) else PASS
    reason = f"anthropic {version}" + (f"; {', '.join(notes)}" if notes else "; current feature set")
    return Result("sdk", status, reason, "pip install -U anthropic" if notes else "")


def effective_timeout(client=None, timeout: Optional[float] = None) -> tuple:
    """Returns (read, connect, max_retries, source) the app's client runs with."""
    from ..timeouts import from_client_value

    if client is not None:
        read, connect = from_client_value(getattr(client, "timeout", None))
        return read, connect, getattr(client, "max_retries", None), "the client object passed in"
    if timeout is not None:
        read, connect = from_client_value(timeout)
        return read, connect, 2, "--timeout"
    try:
        from anthropic import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT

        read, connect = from_client_value(DEFAULT_TIMEOUT)
        return read, connect, DEFAULT_MAX_RETRIES, "the SDK default (the SDK reads no timeout from the environment)"
    except ImportError:
        return 600.0, 5.0, 2, "the SDK default"


def timeout_check(client=None, timeout: Optional[float] = None) -> Result:
    """Returns whether the read timeout and retries fit long generations and huge prompts."""
    read, connect, retries, source = effective_timeout(client, timeout)
    desc = f"read timeout {read if read is not None else 'none'} s, connect {connect} s, max_retries {retries} " \
           f"(from {source})"
    if read is None:
        return Result("timeout", WARN, desc + "; no read timeout: a stalled connection hangs forever",
                      "set Anthropic(timeout=httpx.Timeout(600, connect=5)) or a per-request timeout=")
    if read < 60:
        return Result("timeout", WARN, desc + "; under 60 s, long prefill or non-streamed generations will time out",
                      "raise the client timeout (Anthropic(timeout=300)) or stream long requests")
    if retries is not None and retries > 5:
        return Result("timeout", WARN, desc + "; many retries multiply the worst-case wait",
                      "keep max_retries at 2-3 and alert on anthropic_client_retries_total instead")
    return Result("timeout", PASS, desc)


def streaming_check(max_tokens: Optional[int], model: Optional[str] = None) -> Result:
    """Returns whether a non-streaming request with max_tokens would be refused by the SDK (> 10 minutes)."""
    if max_tokens is None:
        return Result("streaming", PASS, "no --max-tokens given; the SDK refuses non-streaming requests whose "
                                         "max_tokens implies more than 10 minutes (about 21,333 tokens)")
    limit = None
    try:
        from anthropic._constants import MODEL_NONSTREAMING_TOKENS

        limit = MODEL_NONSTREAMING_TOKENS.get(model) if model else None
    except ImportError:
        pass
    expected = 3600 * max_tokens / 128_000
    if expected > 600 or (limit and max_tokens > limit):
        return Result("streaming", FAIL,
                      f"max_tokens={max_tokens} implies about {expected / 60:.0f} min; the SDK refuses it without "
                      "streaming", "use stream=True or client.messages.stream(...)")
    if expected > 120:
        return Result("streaming", WARN,
                      f"max_tokens={max_tokens} may take about {expected / 60:.1f} min non-streamed; proxies with "
                      "60 s idle timeouts will cut it", "stream it: every token resets the idle timers")
    return Result("streaming", PASS, f"max_tokens={max_tokens} is fine without streaming "
                                     f"(about {expected:.0f} s at worst)")


def proxy_check(read_timeout: Optional[float], env=None) -> Result:
    """Returns the proxy variables in effect and whether a declared proxy idle timeout undercuts the SDK's."""
    env = os.environ if env is None else env
    found = {k: env[k] for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy",
                                 "NO_PROXY", "no_proxy") if env.get(k)}
    idle_raw = env.get("CLAUDE_OTEL_PROXY_IDLE_TIMEOUT")
    idle = None
    if idle_raw:
        try:
            idle = float(idle_raw)
        except ValueError:
            return Result("proxy", FAIL, f"CLAUDE_OTEL_PROXY_IDLE_TIMEOUT={idle_raw!r} is not a number",
                          "set it to the proxy's idle timeout in seconds")
    shown = ", ".join(f"{k}={_redact(v)}" for k, v in found.items()) or "no proxy variables set"
    if idle is not None and read_timeout is not None and idle < read_timeout:
        return Result("proxy", FAIL, f"{shown}; the proxy closes idle connections after {idle:g} s, before the SDK's "
                                     f"{read_timeout:g} s read timeout",
                      "raise the proxy's idle timeout (nginx proxy_read_timeout) above the SDK timeout, or stream")
    if found:
        return Result("proxy", WARN, shown + "; a proxy's idle timeout must exceed the SDK timeout",
                      "check proxy_read_timeout / idle timeout, then set CLAUDE_OTEL_PROXY_IDLE_TIMEOUT to it")
    return Result("proxy", PASS, shown)


def _redact(url: str) -> str:
    parsed = urlparse(url)
    if parsed.password:
        return url.replace(parsed.password, "***")
    return url


def _host_port(base_url: str) -> tuple:
    parsed = urlparse(base_url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return parsed.hostname or "", port, parsed.scheme


def dns_check(base_url: str) -> Result:
    """Returns how long resolving the base URL's host takes."""
    host, port, _ = _host_port(base_url)
    start = time.monotonic()
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return Result("dns", FAIL, f"cannot resolve {host} ({exc.strerror or exc}); offline or wrong base URL?",
                      "check ANTHROPIC_BASE_URL, DNS and network access")
    took = time.monotonic() - start
    if took > 1.0:
        return Result("dns", WARN, f"resolving {host} took {took * 1000:.0f} ms",
                      "slow DNS adds to every new connection; check the resolver")
    return Result("dns", PASS, f"{host} resolved in {took * 1000:.1f} ms")


def connect_check(base_url: str, connect_timeout: float = 5.0) -> Result:
    """Returns the TCP connect time (and TLS handshake time for https) to the base URL's host."""
    host, port, scheme = _host_port(base_url)
    start = time.monotonic()
    try:
        sock = socket.create_connection((host, port), timeout=connect_timeout)
    except OSError as exc:
        return Result("connect", FAIL, f"cannot connect to {host}:{port} ({exc}); offline, firewall or proxy?",
                      "check network access to the API, or HTTPS_PROXY")
    tcp = time.monotonic() - start
    detail = f"TCP {tcp * 1000:.1f} ms"
    try:
        if scheme == "https":
            start = time.monotonic()
            context = ssl.create_default_context()
            with context.wrap_socket(sock, server_hostname=host):
                pass
            detail += f", TLS {(time.monotonic() - start) * 1000:.1f} ms"
    except (OSError, ssl.SSLError) as exc:
        return Result("connect", FAIL, f"{detail}; TLS to {host} failed ({exc})",
                      "check certificates (SSL_CERT_FILE) and TLS-intercepting proxies")
    finally:
        sock.close()
    if tcp > connect_timeout * 0.5:
        return Result("connect", WARN, f"{detail} to {host}:{port}: over half the {connect_timeout:g} s connect "
                                       "timeout", "check latency (VPN, mobile hotspot) or raise connect=")
    return Result("connect", PASS, f"{detail} to {host}:{port}")


def forced_timeout_check(base_url: str, timeout: float) -> Result:
    """Returns whether a real SDK call with this tiny timeout fails fast, proving the setting is applied."""
    try:
        import anthropic
    except ImportError:
        return Result("forced-timeout", FAIL, "the anthropic SDK is not installed", "pip install anthropic")
    client = anthropic.Anthropic(base_url=base_url, api_key="sk-ant-doctor-dummy", max_retries=0, timeout=timeout)
    start = time.monotonic()
    try:
        client.messages.create(model="claude-doctor-probe", max_tokens=1,
                               messages=[{"role": "user", "content": "timeout probe"}])
    except anthropic.APITimeoutError:
        took = time.monotonic() - start
        return Result("forced-timeout", PASS, f"timeout={timeout:g} s raised APITimeoutError after {took:.3f} s: "
                                              "the timeout setting reaches the request")
    except anthropic.APIConnectionError as exc:
        return Result("forced-timeout", WARN, f"the probe failed to connect before its timeout ({exc})",
                      "fix connectivity first (see the connect check)")
    except Exception as exc:
        return Result("forced-timeout", FAIL, f"timeout={timeout:g} s was not enforced: the call returned "
                                              f"{type(exc).__name__} instead of timing out",
                      "look for code that overrides timeout= per request or a custom http_client")
    return Result("forced-timeout", FAIL, f"timeout={timeout:g} s was not enforced: the call succeeded",
                  "look for code that overrides timeout= per request or a custom http_client")


def agent_check() -> Result:
    """Returns whether claude-otel is registered for opentelemetry-instrument and its settings are valid."""
    from importlib.metadata import entry_points

    from ..settings import Settings

    problems = list(Settings.from_env().problems)
    try:
        names = [e.name for e in entry_points(group="opentelemetry_instrumentor")]
    except Exception:
        names = []
    if problems:
        return Result("claude-otel", FAIL, "; ".join(problems), "fix the settings named above")
    if "claude_otel" not in names:
        return Result("claude-otel", WARN, "the opentelemetry_instrumentor entry point is not registered",
                      "pip install claude-otel (not just on PYTHONPATH) for opentelemetry-instrument")
    return Result("claude-otel", PASS, "installed, entry point registered, settings valid")


def all_checks(base_url: Optional[str] = None, timeout: Optional[float] = None, client=None,
               max_tokens: Optional[int] = None, model: Optional[str] = None,
               force_timeout: Optional[float] = None, network: bool = True) -> List[Result]:
    """Returns every check's Result, in checklist order."""
    base_url = base_url or os.environ.get("ANTHROPIC_BASE_URL") or (
        str(getattr(client, "base_url", "")) if client is not None else "") or DEFAULT_BASE_URL
    read, connect, _, _ = effective_timeout(client, timeout)
    results = [sdk_version(), timeout_check(client, timeout), streaming_check(max_tokens, model),
               proxy_check(read), agent_check()]
    if network:
        dns = dns_check(base_url)
        results.append(dns)
        if dns.status != FAIL:
            results.append(connect_check(base_url, connect or 5.0))
    if force_timeout is not None:
        results.append(forced_timeout_check(base_url, force_timeout))
    return results
