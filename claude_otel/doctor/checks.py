"""The doctor's checks: one function each, returning a Result with the reason and the fix.

They turn the "Request timed out" checklist into answers: which SDK and timeout
the app really runs with, whether a request must stream, whether a proxy's
idle timeout undercuts the SDK's, and how long DNS, TCP and TLS take to the
API.  Network checks touch only the base URL's host; the forced-timeout probe
sends one request there with a dummy API key.  No check raises: a failure is a
FAIL with its reason.
"""

from __future__ import annotations

import os
import socket
import ssl
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple
from urllib.parse import urlparse

from ..guard import Background

PASS, WARN, FAIL, SKIP = "PASS", "WARN", "FAIL", "SKIP"
DEFAULT_BASE_URL = "https://api.anthropic.com"
DUMMY_KEY = "sk-ant-doctor-dummy-key-not-a-secret"

# The SDK's rule (anthropic/_base_client.py, _calculate_nonstreaming_timeout): with the client's default timeout and
# no per-request timeout=, a non-streamed request is refused when 3600 s * max_tokens / 128,000 exceeds 600 s, or
# when max_tokens exceeds the model's MODEL_NONSTREAMING_TOKENS entry (anthropic/_constants.py).
MAXIMUM_TIME, DEFAULT_TIME, TOKENS_PER_HOUR = 3600.0, 600.0, 128_000
NONSTREAMING_MAX_TOKENS = int(DEFAULT_TIME * TOKENS_PER_HOUR / MAXIMUM_TIME)  # 21,333

# Environment variables the SDK itself reads (anthropic/_client.py); none of them sets a timeout or max_retries.
SDK_ENV = ("ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_CUSTOM_HEADERS",
           "ANTHROPIC_PROFILE", "ANTHROPIC_CONFIG_DIR", "ANTHROPIC_IDENTITY_TOKEN", "ANTHROPIC_IDENTITY_TOKEN_FILE",
           "ANTHROPIC_FEDERATION_RULE_ID", "ANTHROPIC_ORGANIZATION_ID", "ANTHROPIC_OPEN_TELEMETRY")
SECRET_ENV = {"ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_CUSTOM_HEADERS", "ANTHROPIC_IDENTITY_TOKEN"}
PROXY_ENV = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY",
             "no_proxy")


@dataclass
class Result:
    """One check's verdict: PASS, WARN, FAIL (or SKIP), why, how to fix it, and what was measured."""

    name: str
    status: str
    reason: str
    fix: str = ""
    data: Dict[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class ClientConfig:
    """The timeout, retries and base URL of the client an application would build, and where they came from."""

    read: Optional[float]
    connect: Optional[float]
    max_retries: Optional[int]
    base_url: str
    source: str
    is_default: bool
    env: Dict[str, str] = field(default_factory=dict)


def version_tuple(version: str) -> Tuple[int, ...]:
    """Returns (major, minor, patch) from a version string; pre-release parts count as 0."""
    parts = []
    for piece in version.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit()) if piece[:1].isdigit() else ""
        parts.append(int(digits) if digits else 0)
    return tuple(parts + [0] * (3 - len(parts)))


# -- 1. the SDK ------------------------------------------------------------------------------------------------------

def sdk_version() -> Result:
    """Returns the installed SDK version and which timeout-relevant features it predates."""
    try:
        import anthropic
    except ImportError:
        return Result("sdk", FAIL, "the anthropic SDK is not installed in this Python environment",
                      "pip install anthropic (in the environment your app runs in)")
    version = getattr(anthropic, "__version__", "0")
    v = version_tuple(version)
    missing = []
    if v < (0, 108):
        missing.append("the per-attempt Middleware API (0.108)")
    if v < (1, 0):
        missing.append("httpx2 transport (1.0; this SDK uses httpx)")
    if v < (1, 14):
        missing.append("the SDK's own OpenTelemetry call spans (1.14; claude-otel starts its own)")
    data = {"version": version}
    if v < (0, 40):
        return Result("sdk", FAIL, f"anthropic {version} is older than 0.40, the oldest version claude-otel "
                                   "instruments", "pip install -U 'anthropic>=0.40'", data)
    if missing:
        return Result("sdk", PASS, f"anthropic {version}; predates {', '.join(missing)}",
                      "pip install -U anthropic for the newer features (claude-otel works with this version)", data)
    return Result("sdk", PASS, f"anthropic {version}: has the Middleware API, httpx2 and its own tracing", "", data)


# -- 2. the effective timeout and retries ----------------------------------------------------------------------------

def custom_header_names(env: Optional[Mapping[str, str]] = None) -> List[str]:
    """Returns the header names ANTHROPIC_CUSTOM_HEADERS adds (one `Name: value` a line, as the SDK parses it)."""
    raw = (os.environ if env is None else env).get("ANTHROPIC_CUSTOM_HEADERS") or ""
    return [line.split(":", 1)[0].strip() for line in raw.split("\n") if ":" in line and line.split(":", 1)[0].strip()]


def _shown_env(env: Mapping[str, str]) -> Dict[str, str]:
    return {k: ("(set)" if k in SECRET_ENV else env[k]) for k in SDK_ENV if env.get(k)}


def client_config(client=None, timeout: Optional[float] = None, base_url: Optional[str] = None,
                  env: Optional[Mapping[str, str]] = None) -> ClientConfig:
    """Returns the configuration of `client`, or of the client `anthropic.Anthropic()` would build from `env`
    (with `timeout` and `base_url` as the app's own settings, when given)."""
    from ..timeouts import from_client_value

    env = os.environ if env is None else env
    shown = _shown_env(env)
    try:
        import anthropic
        from anthropic import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT
    except ImportError:
        anthropic = None
        DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT = 2, None
    default_read, default_connect = from_client_value(DEFAULT_TIMEOUT) if DEFAULT_TIMEOUT is not None else (600.0, 5.0)
    if client is not None:
        value = getattr(client, "timeout", None)
        read, connect = from_client_value(value)
        url = base_url or str(getattr(client, "base_url", "") or "") or DEFAULT_BASE_URL
        return ClientConfig(read, connect, getattr(client, "max_retries", None), url.rstrip("/"),
                            "the client object passed in", value == DEFAULT_TIMEOUT, shown)
    url = base_url or env.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL
    retries = DEFAULT_MAX_RETRIES
    if anthropic is not None and env is os.environ and base_url is None:
        try:  # the SDK's own resolution of the base URL (a dummy key: no credentials are read; nothing is sent)
            built = anthropic.Anthropic(api_key=DUMMY_KEY)
            url, retries = str(built.base_url).rstrip("/"), built.max_retries
            built.close()
        except Exception:
            pass
    if timeout is not None:
        read, connect = from_client_value(timeout)
        return ClientConfig(read, connect, retries, url.rstrip("/"), "--timeout", False, shown)
    return ClientConfig(default_read, default_connect, retries, url.rstrip("/"),
                        "the SDK default; the SDK reads no timeout or max_retries from the environment", True, shown)


def timeout_check(config: ClientConfig, max_tokens: Optional[int] = None) -> Result:
    """Returns whether the read timeout and max_retries fit long prefills and non-streamed generations."""
    read, connect, retries = config.read, config.connect, config.max_retries
    desc = (f"read timeout {_s(read)}, connect {_s(connect)}, max_retries {retries} (from {config.source})")
    data = {"read_timeout": read, "connect_timeout": connect, "max_retries": retries, "source": config.source,
            "base_url": config.base_url, "is_sdk_default": config.is_default, "env": config.env}
    env_note = ("; SDK variables set: " + ", ".join(f"{k}={v}" for k, v in config.env.items())) if config.env else ""
    set_it = "set it in code: Anthropic(timeout=httpx.Timeout(300, connect=5), max_retries=2) or per request " \
             "client.with_options(timeout=...)"
    if read is None:
        return Result("timeout", WARN, desc + "; no read timeout: a stalled connection hangs forever" + env_note,
                      set_it, data)
    if read < 60:
        return Result("timeout", WARN, desc + "; under 60 s, a long prefill (large prompt) or a non-streamed "
                                              "generation times out" + env_note,
                      "raise the read timeout (it is per read, so streams tolerate it better) or stream; " + set_it,
                      data)
    if config.is_default and max_tokens is not None and 60 < _expected(max_tokens) <= DEFAULT_TIME:
        return Result("timeout", WARN, desc + f"; with the 10-minute default a non-streamed call with "
                                              f"max_tokens={max_tokens} may wait up to {_s(_expected(max_tokens))} "
                                              f"for its first byte" + env_note,
                      "stream long generations (every token resets the read timeout), or set a timeout you can "
                      "afford to wait", data)
    if retries is not None and retries > 5:
        return Result("timeout", WARN, desc + "; many retries multiply the worst-case wait to "
                                              f"{_s(read * (retries + 1))} plus backoff" + env_note,
                      "keep max_retries at 2-3 and watch anthropic_client_retries_total instead", data)
    if retries == 0:
        return Result("timeout", WARN, desc + "; with no retries a single 429/529 or dropped connection "
                                              "reaches the application" + env_note,
                      "use max_retries=2 (the SDK default) unless the app retries on its own", data)
    return Result("timeout", PASS, desc + env_note, "", data)


# -- 3. non-streaming max_tokens ---------------------------------------------------------------------------------------

def _expected(max_tokens: int) -> float:
    return MAXIMUM_TIME * max_tokens / TOKENS_PER_HOUR


def model_limit(model: Optional[str]) -> Optional[int]:
    """Returns the SDK's non-streaming max_tokens limit for the model (anthropic._constants), or None."""
    if not model:
        return None
    try:
        from anthropic._constants import MODEL_NONSTREAMING_TOKENS
    except ImportError:
        return None
    return MODEL_NONSTREAMING_TOKENS.get(model)


def streaming_check(max_tokens: Optional[int], model: Optional[str] = None,
                    config: Optional[ClientConfig] = None, proxy_idle: Optional[float] = None) -> Result:
    """Returns whether a non-streamed request with max_tokens is refused by the SDK, or risks a timeout."""
    default = config is None or config.is_default
    read = config.read if config is not None else DEFAULT_TIME
    limit = model_limit(model)
    rule = (f"the SDK refuses a non-streamed request under its default timeout when 3600 s x max_tokens / 128,000 "
            f"exceeds 10 minutes (max_tokens > {NONSTREAMING_MAX_TOKENS:,})"
            + (f" or max_tokens > {limit:,} for {model}" if limit else ""))
    if max_tokens is None:
        return Result("streaming", PASS, f"no --max-tokens given; {rule}", "", {"limit": NONSTREAMING_MAX_TOKENS})
    expected = _expected(max_tokens)
    too_long = expected > DEFAULT_TIME or bool(limit and max_tokens > limit)
    data = {"max_tokens": max_tokens, "model": model, "expected_seconds": round(expected, 1),
            "model_limit": limit, "refused_by_sdk": bool(default and too_long)}
    stream_fix = "use stream=True or client.messages.stream(...) (then get_final_message())"
    if too_long and default:
        why = (f"max_tokens={max_tokens:,} exceeds {model}'s non-streaming limit of {limit:,}" if limit and
               max_tokens > limit else f"max_tokens={max_tokens:,} implies up to {expected / 60:.0f} min")
        return Result("streaming", FAIL, f"{why}: the SDK raises ValueError('Streaming is required ...') before "
                                         "sending it non-streamed", stream_fix, data)
    if too_long:
        return Result("streaming", WARN, f"max_tokens={max_tokens:,} may take up to {expected / 60:.0f} min "
                                         f"non-streamed; your custom timeout lets the SDK send it, but the SDK would "
                                         f"refuse it under its default", stream_fix, data)
    if read is not None and expected > read:
        return Result("streaming", WARN, f"max_tokens={max_tokens:,} may take up to {_s(expected)} non-streamed, "
                                         f"longer than the {_s(read)} read timeout: a non-streamed response sends "
                                         "no byte until it is complete", stream_fix + ", or raise the timeout", data)
    if proxy_idle is not None and expected > proxy_idle:
        return Result("streaming", WARN, f"max_tokens={max_tokens:,} may take up to {_s(expected)} non-streamed, "
                                         f"longer than the proxy's {_s(proxy_idle)} idle timeout",
                      stream_fix + ": every token resets the proxy's idle timer", data)
    if expected > 120:
        return Result("streaming", WARN, f"max_tokens={max_tokens:,} may take up to {_s(expected)} non-streamed; "
                                         "proxies and load balancers with 60-120 s idle timeouts cut silent "
                                         "connections", stream_fix + ": every token resets the idle timers", data)
    return Result("streaming", PASS, f"max_tokens={max_tokens:,} is fine without streaming (up to {_s(expected)})",
                  "", data)


# -- 4. proxies --------------------------------------------------------------------------------------------------------

def _redact(url: str) -> str:
    try:
        parsed = urlparse(url)
        if parsed.password:
            return url.replace(f":{parsed.password}@", ":***@")
    except ValueError:
        pass
    return url


def _bypassed(host: str, no_proxy: str) -> bool:
    import ipaddress

    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        if "/" in entry:  # a CIDR range
            try:
                if ipaddress.ip_address(host.strip("[]")) in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        entry = entry.lstrip("*").lstrip(".") if entry.startswith(("*", ".")) else entry
        entry = entry.split(":")[0]
        if host == entry or host.endswith("." + entry):
            return True
    return False


def applicable_proxy(base_url: str, env: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """Returns the proxy URL the SDK's HTTP client would use for base_url (from the environment), or None."""
    env = os.environ if env is None else env
    host, _, scheme = host_port(base_url)
    no_proxy = env.get("NO_PROXY") or env.get("no_proxy") or ""
    if host and _bypassed(host.lower(), no_proxy):
        return None
    names = ("HTTPS_PROXY", "https_proxy") if scheme == "https" else ("HTTP_PROXY", "http_proxy")
    for name in names + ("ALL_PROXY", "all_proxy"):
        if env.get(name):
            return env[name]
    return None


def proxy_check(read_timeout: Optional[float], base_url: str = DEFAULT_BASE_URL,
                env: Optional[Mapping[str, str]] = None) -> Result:
    """Returns the proxy variables in effect, which proxy the base URL goes through, and whether a declared proxy
    idle timeout (CLAUDE_OTEL_PROXY_IDLE_TIMEOUT) undercuts the SDK's read timeout."""
    from ..settings import SettingError, parse_seconds

    env = os.environ if env is None else env
    found = {k: _redact(env[k]) for k in PROXY_ENV if env.get(k)}
    proxy = applicable_proxy(base_url, env)
    data = {"variables": found, "proxy_for_base_url": _redact(proxy) if proxy else None, "idle_timeout": None}
    idle = None
    raw = env.get("CLAUDE_OTEL_PROXY_IDLE_TIMEOUT")
    if raw is not None:
        try:
            idle = parse_seconds("CLAUDE_OTEL_PROXY_IDLE_TIMEOUT", raw)
        except SettingError as exc:
            return Result("proxy", FAIL, str(exc), "set it to the proxy's idle timeout in seconds, e.g. 60", data)
    data["idle_timeout"] = idle
    shown = ", ".join(f"{k}={v}" for k, v in found.items()) or "no proxy variables set"
    route = f"; {host_port(base_url)[0]} goes through {_redact(proxy)}" if proxy else ""
    reminder = "a proxy's idle timeout (nginx proxy_read_timeout, 60 s by default) must exceed the SDK's read timeout"
    if idle is not None and read_timeout is not None and idle < read_timeout:
        return Result("proxy", FAIL, f"{shown}{route}; CLAUDE_OTEL_PROXY_IDLE_TIMEOUT={idle:g} s is shorter than "
                                     f"the SDK's {read_timeout:g} s read timeout: the proxy cuts a silent request "
                                     f"first", "raise the proxy's idle timeout (nginx proxy_read_timeout, load "
                                                "balancer idle timeout) above the SDK timeout, or stream", data)
    if idle is not None:
        return Result("proxy", PASS, f"{shown}{route}; the declared proxy idle timeout {idle:g} s exceeds the SDK's "
                                     f"read timeout {_s(read_timeout)}", "", data)
    if proxy:
        return Result("proxy", WARN, f"{shown}{route}; {reminder}",
                      "check the proxy's idle timeout, then declare it with CLAUDE_OTEL_PROXY_IDLE_TIMEOUT=<seconds> "
                      "so timeout utilization accounts for it", data)
    if found:
        return Result("proxy", PASS, f"{shown}; not used for {host_port(base_url)[0]} (NO_PROXY or scheme); "
                                     f"{reminder} where one is used", "", data)
    return Result("proxy", PASS, f"{shown}; if a proxy or load balancer sits in between anyway, {reminder}", "", data)


# -- 5. DNS and 6. TCP + TLS -----------------------------------------------------------------------------------------

def host_port(base_url: str) -> Tuple[str, int, str]:
    """Returns (host, port, scheme) of a base URL (port from the scheme when absent)."""
    try:
        parsed = urlparse(base_url if "//" in base_url else "https://" + base_url)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        return parsed.hostname or "", port, parsed.scheme or "https"
    except ValueError:
        return "", 0, ""


def _bounded(fn, timeout: float):
    """Returns fn()'s result, or raises TimeoutError when it takes longer than timeout (it keeps running)."""
    job = Background(fn, "claude-otel-doctor")
    if not job.wait(timeout):
        raise TimeoutError(f"no answer within {timeout:g} s")
    return job.result()


def dns_check(base_url: str, timeout: float = 10.0) -> Result:
    """Returns how long resolving the base URL's host takes."""
    host, port, _ = host_port(base_url)
    if not host:
        return Result("dns", FAIL, f"the base URL {base_url!r} has no host name", "check ANTHROPIC_BASE_URL / --base-url")
    start = time.monotonic()
    try:
        infos = _bounded(lambda: socket.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout)
    except Exception as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return Result("dns", FAIL, f"cannot resolve {host}: {reason} (offline? wrong base URL?)",
                      "check network access, the resolver (/etc/resolv.conf) and ANTHROPIC_BASE_URL",
                      {"host": host})
    took = time.monotonic() - start
    addresses = sorted({info[4][0] for info in infos})
    data = {"host": host, "ms": round(took * 1000, 2), "addresses": addresses}
    if took > 1.0:
        return Result("dns", WARN, f"resolving {host} took {took * 1000:.0f} ms",
                      "slow DNS adds to every new connection (and to connect timeouts); check the resolver", data)
    return Result("dns", PASS, f"{host} resolved in {took * 1000:.1f} ms to {', '.join(addresses[:3])}", "", data)


def ssl_context() -> ssl.SSLContext:
    """Returns the TLS context the SDK's HTTP client verifies with (httpx2 or httpx; SSL_CERT_FILE honoured)."""
    for module in ("httpx2", "httpx"):
        try:
            mod = __import__(module)
            return mod.create_ssl_context()
        except Exception:
            continue
    return ssl.create_default_context()


def connect_check(base_url: str, connect_timeout: Optional[float] = 5.0,
                  env: Optional[Mapping[str, str]] = None) -> Result:
    """Returns the TCP connect time (and TLS handshake time for https) to the base URL's host, directly."""
    host, port, scheme = host_port(base_url)
    limit = connect_timeout or 5.0
    proxy = applicable_proxy(base_url, env)
    via = (f" (the SDK would go through the proxy {_redact(proxy)}; this check connects directly)" if proxy else "")
    start = time.monotonic()
    try:
        sock = socket.create_connection((host, port), timeout=max(limit, 1.0))
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        return Result("connect", FAIL, f"cannot connect to {host}:{port} ({reason}); offline, firewall or proxy?{via}",
                      "check network access to the API host and port, or HTTPS_PROXY", {"host": host, "port": port})
    tcp = time.monotonic() - start
    data: Dict[str, object] = {"host": host, "port": port, "tcp_ms": round(tcp * 1000, 2), "tls_ms": None}
    detail = f"TCP {tcp * 1000:.1f} ms"
    try:
        if scheme == "https":
            start = time.monotonic()
            sock.settimeout(max(limit, 1.0) * 2)
            with ssl_context().wrap_socket(sock, server_hostname=host) as tls:
                data["tls_version"] = tls.version()
            tls_time = time.monotonic() - start
            data["tls_ms"] = round(tls_time * 1000, 2)
            detail += f", TLS {tls_time * 1000:.1f} ms ({data['tls_version']})"
    except (OSError, ssl.SSLError, ValueError) as exc:
        return Result("connect", FAIL, f"{detail}; the TLS handshake with {host} failed ({exc}){via}",
                      "check the CA certificates the SDK trusts (SSL_CERT_FILE) and TLS-intercepting proxies", data)
    finally:
        sock.close()
    if tcp > limit * 0.5:
        return Result("connect", WARN, f"{detail} to {host}:{port}: over half the {limit:g} s connect timeout{via}",
                      "check latency (VPN, mobile hotspot) or raise connect= in httpx.Timeout", data)
    return Result("connect", PASS, f"{detail} to {host}:{port}{via}", "", data)


# -- 7. the forced timeout -------------------------------------------------------------------------------------------

def forced_timeout_check(base_url: str, timeout: float = 0.001) -> Result:
    """Returns whether a real SDK call with this tiny timeout fails fast with APITimeoutError, proving the timeout
    setting reaches the request.  Sends only a dummy API key: credentials and custom headers from the environment
    are not used."""
    try:
        import anthropic
    except ImportError:
        return Result("forced-timeout", FAIL, "the anthropic SDK is not installed", "pip install anthropic")
    data = {"timeout": timeout, "seconds": None}
    try:
        # An explicit api_key stops the SDK reading credentials from the environment; headers from
        # ANTHROPIC_CUSTOM_HEADERS (which may carry secrets) are removed with Omit.
        omit = getattr(anthropic, "Omit", None)
        headers = {name: omit() for name in custom_header_names()} if omit is not None else {}
        client = anthropic.Anthropic(base_url=base_url, api_key=DUMMY_KEY, max_retries=0, timeout=timeout,
                                     default_headers=headers or None)
    except Exception as exc:
        return Result("forced-timeout", FAIL, f"cannot build a client for {base_url} ({exc})",
                      "check the base URL", data)
    start = time.monotonic()
    try:
        client.messages.create(model="claude-doctor-timeout-probe", max_tokens=1,
                               messages=[{"role": "user", "content": "timeout probe"}])
    except anthropic.APITimeoutError:
        took = time.monotonic() - start
        data["seconds"] = round(took, 4)
        return Result("forced-timeout", PASS, f"timeout={timeout:g} s raised APITimeoutError after {took:.3f} s: a "
                                              "timeout set on the client reaches the request", "", data)
    except anthropic.APIConnectionError as exc:
        data["seconds"] = round(time.monotonic() - start, 4)
        return Result("forced-timeout", WARN, f"the probe could not connect before its {timeout:g} s timeout "
                                              f"({exc.__cause__ or exc}); nothing proven",
                      "fix connectivity first (see the dns and connect checks)", data)
    except Exception as exc:
        data["seconds"] = round(time.monotonic() - start, 4)
        return Result("forced-timeout", FAIL, f"timeout={timeout:g} s was not enforced: the call ended with "
                                              f"{type(exc).__name__} after {data['seconds']:.3f} s instead of timing "
                                              "out", "look for a custom http_client or transport that replaces the "
                                                     "timeout", data)
    finally:
        client.close()
    data["seconds"] = round(time.monotonic() - start, 4)
    return Result("forced-timeout", FAIL, f"timeout={timeout:g} s was not enforced: the call succeeded after "
                                          f"{data['seconds']:.3f} s", "look for a custom http_client or transport "
                                                                      "that replaces the timeout", data)


# -- 8. claude-otel itself -------------------------------------------------------------------------------------------

def agent_check(env: Optional[Mapping[str, str]] = None) -> Result:
    """Returns whether claude-otel is installed, registered for opentelemetry-instrument, and its settings valid."""
    from importlib.metadata import PackageNotFoundError, entry_points, version

    from ..settings import Settings
    from ..version import __version__

    problems = list(Settings.from_env(env).problems)
    try:
        installed = version("claude-otel")
    except PackageNotFoundError:
        installed = None
    try:
        names = [e.name for e in entry_points(group="opentelemetry_instrumentor")]
    except Exception:
        names = []
    data = {"version": __version__, "installed": installed, "entry_point": "claude_otel" in names,
            "problems": problems}
    if problems:
        return Result("claude-otel", FAIL, "invalid settings: " + "; ".join(problems),
                      "fix the variables named above (the agent falls back to their defaults meanwhile)", data)
    if installed is None:
        return Result("claude-otel", WARN, f"claude-otel {__version__} is importable but not installed (source tree on "
                                           "PYTHONPATH?): opentelemetry-instrument cannot find it",
                      "pip install claude-otel (or pip install -e . in the checkout)", data)
    if "claude_otel" not in names:
        return Result("claude-otel", WARN, "the opentelemetry_instrumentor entry point claude_otel is not registered",
                      "reinstall claude-otel (pip install --force-reinstall claude-otel)", data)
    return Result("claude-otel", PASS, f"claude-otel {installed} installed, entry point registered for "
                                       "opentelemetry-instrument, CLAUDE_OTEL_* settings valid", "", data)


# -- all of them -----------------------------------------------------------------------------------------------------

def _s(seconds: Optional[float]) -> str:
    if seconds is None:
        return "none"
    if seconds >= 120:
        return f"{seconds:g} s ({seconds / 60:.1f} min)"
    return f"{seconds:g} s"


def all_checks(client=None, base_url: Optional[str] = None, timeout: Optional[float] = None,
               max_tokens: Optional[int] = None, model: Optional[str] = None,
               force_timeout: Optional[float] = None, network: bool = True,
               env: Optional[Mapping[str, str]] = None) -> List[Result]:
    """Returns every check's Result, in checklist order."""
    config = client_config(client, timeout, base_url, env)
    proxy = proxy_check(config.read, config.base_url, env)
    results = [sdk_version(), timeout_check(config, max_tokens),
               streaming_check(max_tokens, model, config, proxy.data.get("idle_timeout")), proxy]
    if network:
        dns = dns_check(config.base_url)
        results.append(dns)
        if dns.status == FAIL:
            results.append(Result("connect", SKIP, "skipped: the host does not resolve"))
        else:
            results.append(connect_check(config.base_url, config.connect, env))
        if force_timeout is not None:
            results.append(forced_timeout_check(config.base_url, force_timeout) if dns.status != FAIL else
                           Result("forced-timeout", SKIP, "skipped: the host does not resolve"))
    elif force_timeout is not None:
        results.append(Result("forced-timeout", SKIP, "skipped: offline (network=False / --offline)"))
    results.append(agent_check(env))
    return results
