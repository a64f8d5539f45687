"""`claude-otel doctor`: each check's pass and fail paths, offline, TLS, the Python API, JSON and exit codes.

Network checks run only against 127.0.0.1 (the simulator, a closed port, a local TLS server) and a name under
the reserved .invalid domain, which never resolves.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import anthropic
import pytest

from claude_otel import doctor
from claude_otel.doctor import checks, report
from claude_otel.doctor.checks import FAIL, PASS, SKIP, WARN
from tests.helpers.require import missing

ROOT = Path(__file__).resolve().parent.parent
CLEAN = {"CLAUDE_OTEL_", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR",
         "OTEL_"}


def by_name(results):
    return {r.name: r for r in results}


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith(tuple(CLEAN)) and not k.startswith("ANTHROPIC_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch):
    for name in checks.PROXY_ENV + ("SSL_CERT_FILE", "SSL_CERT_DIR", "CLAUDE_OTEL_PROXY_IDLE_TIMEOUT",
                                    "ANTHROPIC_BASE_URL", "ANTHROPIC_CUSTOM_HEADERS"):
        monkeypatch.delenv(name, raising=False)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- 1. sdk ------------------------------------------------------------------------------------------------------

def test_sdk_version_pass_old_and_missing(monkeypatch):
    current = checks.sdk_version()
    assert current.status == PASS and anthropic.__version__ in current.reason
    monkeypatch.setattr(anthropic, "__version__", "0.100.0")
    old = checks.sdk_version()
    assert old.status == PASS and "Middleware" in old.reason and "httpx2" in old.reason and "1.14" in old.reason
    monkeypatch.setattr(anthropic, "__version__", "0.39.0")
    assert checks.sdk_version().status == FAIL
    monkeypatch.setitem(sys.modules, "anthropic", None)  # import anthropic now raises ImportError
    missing = checks.sdk_version()
    assert missing.status == FAIL and "not installed" in missing.reason and "pip install" in missing.fix


# -- 2. timeout and max_retries ----------------------------------------------------------------------------------

def test_timeout_check_from_a_client_object():
    def verdict(**kw):
        return by_name(doctor.run(anthropic.Anthropic(api_key="k", **kw), network=False))["timeout"]

    good = verdict(timeout=300)
    assert good.status == PASS and "300" in good.reason and "client object" in good.reason
    short = verdict(timeout=20)
    assert short.status == WARN and "under 60 s" in short.reason and short.fix
    assert verdict(timeout=None).status == WARN
    assert verdict(timeout=300, max_retries=0).status == WARN
    assert verdict(timeout=300, max_retries=10).status == WARN
    assert verdict().status == PASS  # the SDK default: 600 s, 2 retries


def test_timeout_check_from_the_environment_and_flags(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-real-secret")
    config = checks.client_config()
    assert config.base_url == "http://127.0.0.1:9" and config.read == 600 and config.max_retries == 2
    result = checks.timeout_check(config)
    assert result.status == PASS and "reads no timeout" in result.reason
    assert "ANTHROPIC_BASE_URL=http://127.0.0.1:9" in result.reason and "sk-ant-real-secret" not in result.reason
    assert "ANTHROPIC_API_KEY=(set)" in result.reason
    flagged = checks.timeout_check(checks.client_config(timeout=30))
    assert flagged.status == WARN and "--timeout" in flagged.reason
    # the 10-minute default with a non-streamed max_tokens that may take minutes
    long = checks.timeout_check(checks.client_config(), max_tokens=8192)
    assert long.status == WARN and "first byte" in long.reason


# -- 3. non-streaming max_tokens ---------------------------------------------------------------------------------

def sdk_refuses(max_tokens, model="claude-x", **client):
    c = anthropic.Anthropic(api_key="k", base_url=f"http://127.0.0.1:{closed_port()}", max_retries=0, **client)
    try:
        c.messages.create(model=model, max_tokens=max_tokens, messages=[{"role": "user", "content": "x"}])
    except ValueError as exc:
        return "Streaming is required" in str(exc)
    except anthropic.APIConnectionError:
        return False  # the request was sent (to a closed port)
    return False


def test_streaming_check_matches_the_sdk_rule_exactly():
    assert checks.streaming_check(None).status == PASS
    assert checks.streaming_check(4096).status == PASS
    assert checks.streaming_check(8192).status == WARN  # up to 230 s of silence
    edge = checks.NONSTREAMING_MAX_TOKENS
    assert edge == 21333
    for max_tokens in (edge, edge + 1, 64000):
        result = checks.streaming_check(max_tokens)
        assert (result.status == FAIL) == sdk_refuses(max_tokens) == (max_tokens > edge), max_tokens
        assert result.data["refused_by_sdk"] == (max_tokens > edge)
    refused = checks.streaming_check(64000)
    assert "Streaming is required" in refused.reason and "stream" in refused.fix


def test_streaming_check_model_limit():
    from anthropic._constants import MODEL_NONSTREAMING_TOKENS

    model, limit = next(iter(MODEL_NONSTREAMING_TOKENS.items()))
    over = checks.streaming_check(limit + 1, model)
    assert over.status == FAIL and model in over.reason and sdk_refuses(limit + 1, model)
    assert checks.streaming_check(limit, model).status != FAIL and not sdk_refuses(limit, model)


def test_streaming_check_with_a_custom_timeout(sim):
    custom = checks.client_config(anthropic.Anthropic(api_key="k", timeout=3600))
    result = checks.streaming_check(64000, config=custom)
    assert result.status == WARN and "custom timeout" in result.reason
    # the SDK indeed sends it: no refusal with a custom timeout
    reply = anthropic.Anthropic(api_key="k", base_url=sim.base_url, timeout=3600).messages.create(
        model="claude-x", max_tokens=64000, messages=[{"role": "user", "content": "x"}])
    assert reply.content
    short = checks.client_config(anthropic.Anthropic(api_key="k", timeout=90))
    assert checks.streaming_check(4096, config=short).status == WARN  # up to 115 s > 90 s read timeout
    assert checks.streaming_check(1024, config=short).status == PASS
    assert checks.streaming_check(4096, proxy_idle=60).status == WARN


# -- 4. proxy ----------------------------------------------------------------------------------------------------

def test_proxy_check():
    assert checks.proxy_check(600.0, env={}).status == PASS
    via = checks.proxy_check(600.0, "https://api.anthropic.com", env={"HTTPS_PROXY": "http://user:pw@proxy:3128"})
    assert via.status == WARN and "pw" not in via.reason and "***" in via.reason
    assert "proxy_read_timeout" in via.reason and "CLAUDE_OTEL_PROXY_IDLE_TIMEOUT" in via.fix
    bypassed = checks.proxy_check(600.0, "https://api.anthropic.com",
                                  env={"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": ".anthropic.com"})
    assert bypassed.status == PASS and bypassed.data["proxy_for_base_url"] is None
    assert checks.applicable_proxy("http://127.0.0.1:8089", {"HTTP_PROXY": "http://p:1", "NO_PROXY": "127.0.0.0/8"}) \
        is None
    assert checks.applicable_proxy("http://127.0.0.1:8089", {"HTTPS_PROXY": "http://p:1"}) is None  # scheme
    assert checks.applicable_proxy("https://a.example", {"ALL_PROXY": "http://p:1"}) == "http://p:1"
    undercut = checks.proxy_check(600.0, env={"CLAUDE_OTEL_PROXY_IDLE_TIMEOUT": "60"})
    assert undercut.status == FAIL and "proxy_read_timeout" in undercut.fix
    assert checks.proxy_check(30.0, env={"CLAUDE_OTEL_PROXY_IDLE_TIMEOUT": "60"}).status == PASS
    invalid = checks.proxy_check(600.0, env={"CLAUDE_OTEL_PROXY_IDLE_TIMEOUT": "x"})
    assert invalid.status == FAIL and "CLAUDE_OTEL_PROXY_IDLE_TIMEOUT" in invalid.reason


# -- 5. DNS, 6. TCP and TLS --------------------------------------------------------------------------------------

def test_dns_and_connect_pass_against_the_simulator(sim):
    dns = checks.dns_check(sim.base_url)
    assert dns.status == PASS and "127.0.0.1" in dns.data["addresses"]
    connect = checks.connect_check(sim.base_url)
    assert connect.status == PASS and connect.data["tcp_ms"] is not None and connect.data["tls_ms"] is None


def test_offline_dns_failure_and_refused_connection_without_traceback():
    dns = checks.dns_check("http://nonexistent.invalid")
    assert dns.status == FAIL and "cannot resolve nonexistent.invalid" in dns.reason and "offline?" in dns.reason
    assert checks.dns_check("http://").status == FAIL
    refused = checks.connect_check(f"http://127.0.0.1:{closed_port()}")
    assert refused.status == FAIL and "cannot connect" in refused.reason
    results = by_name(doctor.run(base_url="http://nonexistent.invalid", timeout=0.001))
    assert results["dns"].status == FAIL
    assert results["connect"].status == SKIP and results["forced-timeout"].status == SKIP
    offline = by_name(doctor.run(base_url="http://nonexistent.invalid", network=False))
    assert "dns" not in offline and "connect" not in offline


def make_certificate(directory: Path):
    """Returns (cert, key) paths of a self-signed certificate for 127.0.0.1 and localhost, or skips."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    try:
        import datetime
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        if shutil.which("openssl") is None:
            missing("neither the cryptography package nor the openssl CLI is available to make a certificate")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-days", "1", "-subj", "/CN=localhost", "-addext",
                        "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                       check=True, capture_output=True)
        return cert, key
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                               x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(private, hashes.SHA256()))
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return cert, key


@pytest.fixture
def tls_server(tmp_path):
    """A local TLS server that completes handshakes and closes; yields (port, cert path)."""
    cert, key = make_certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            try:
                conn.settimeout(5)
                with context.wrap_socket(conn, server_side=True):
                    pass
            except (OSError, ssl.SSLError):
                pass
            finally:
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], cert
    finally:
        stop.set()
        thread.join(2)
        listener.close()


def test_tls_handshake_pass_with_a_trusted_certificate_and_fail_without(tls_server, monkeypatch, sim):
    port, cert = tls_server
    untrusted = checks.connect_check(f"https://127.0.0.1:{port}")
    assert untrusted.status == FAIL and "TLS handshake" in untrusted.reason and "SSL_CERT_FILE" in untrusted.fix
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the SDK's httpx2 trusts it the same way
    trusted = checks.connect_check(f"https://127.0.0.1:{port}")
    assert trusted.status == PASS, trusted
    assert trusted.data["tls_ms"] is not None and "TLS" in trusted.reason
    plain = checks.connect_check(f"https://127.0.0.1:{sim.port}", 1.0)  # an HTTP server spoken to in TLS
    assert plain.status == FAIL and "TLS" in plain.reason


# -- 7. forced timeout -------------------------------------------------------------------------------------------

def test_forced_timeout_proves_the_setting_applies(sim):
    forced = checks.forced_timeout_check(sim.base_url, 0.001)
    assert forced.status == PASS and "APITimeoutError" in forced.reason, forced
    assert forced.data["seconds"] < 5
    not_enforced = checks.forced_timeout_check(sim.base_url, 30)
    assert not_enforced.status == FAIL and "not enforced" in not_enforced.reason
    unreachable = checks.forced_timeout_check(f"http://127.0.0.1:{closed_port()}", 5)
    assert unreachable.status == WARN and "could not connect" in unreachable.reason


def test_forced_timeout_never_sends_the_real_key_or_custom_headers(sim, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-real-secret")
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "real-token")
    monkeypatch.setenv("ANTHROPIC_CUSTOM_HEADERS", "x-secret: s3cret\nx-team: blue")
    checks.forced_timeout_check(sim.base_url, 30)  # long enough for the request to arrive
    assert sim.requests
    for record in sim.requests:
        sent = json.dumps(record.headers).lower()
        assert "real-secret" not in sent and "real-token" not in sent and "s3cret" not in sent
        assert "x-secret" not in record.headers and checks.DUMMY_KEY in sent


# -- 8. claude-otel ----------------------------------------------------------------------------------------------

def test_agent_check(monkeypatch):
    ok = checks.agent_check()
    assert ok.status == PASS and ok.data["entry_point"]
    monkeypatch.setenv("CLAUDE_OTEL_PROXY_IDLE_TIMEOUT", "soon")
    bad = checks.agent_check()
    assert bad.status == FAIL and "CLAUDE_OTEL_PROXY_IDLE_TIMEOUT" in bad.reason
    monkeypatch.delenv("CLAUDE_OTEL_PROXY_IDLE_TIMEOUT")
    import importlib.metadata

    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: [])
    unregistered = checks.agent_check()
    assert unregistered.status == WARN and "entry point" in unregistered.reason


# -- the Python API, the report, the command line ----------------------------------------------------------------

def test_python_api_with_a_client_object(sim):
    client = anthropic.Anthropic(api_key="k", base_url=sim.base_url, timeout=120, max_retries=3)
    results = by_name(doctor.run(client, max_tokens=2048, timeout=0.001))
    assert results["timeout"].status == PASS and results["timeout"].data["max_retries"] == 3
    assert results["timeout"].data["base_url"] == sim.base_url
    assert results["dns"].status == PASS and results["connect"].status == PASS
    assert results["forced-timeout"].status == PASS
    assert doctor.exit_code(list(results.values())) == 0
    assert [r.name for r in results.values()] == ["sdk", "timeout", "streaming", "proxy", "dns", "connect",
                                                  "forced-timeout", "claude-otel"]


def test_report_text_json_and_exit_codes():
    results = [checks.Result("a", PASS, "fine"), checks.Result("b", SKIP, "skipped")]
    assert report.exit_code(results) == 0 and report.exit_code([]) == 0
    results.append(checks.Result("c", WARN, "careful " * 30, "do this"))
    assert report.exit_code(results) == 1
    results.append(checks.Result("d", FAIL, "broken", "fix that"))
    assert report.exit_code(results) == 2
    text = report.render(results)
    assert "fix: do this" in text and "fix: that" not in text and "exit code 2" in text
    assert max(len(line) for line in text.splitlines()) <= 110
    document = json.loads(report.to_json(results, extra="x"))
    assert document["exit_code"] == 2 and document["extra"] == "x"
    assert document["summary"] == {"pass": 1, "warn": 1, "fail": 1, "skip": 1}
    assert set(document["checks"][0]) == {"name", "status", "reason", "fix", "data"}


def cli(*args, **env):
    return subprocess.run([sys.executable, "-m", "claude_otel", "doctor", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=90, env=clean_env(**env))


def test_cli_json_and_exit_codes(sim, monkeypatch, capsys):
    ok = cli("--base-url", sim.base_url, "--json")
    document = json.loads(ok.stdout)
    assert ok.returncode == document["exit_code"] == 0, ok.stdout
    assert [c["name"] for c in document["checks"]] == ["sdk", "timeout", "streaming", "proxy", "dns", "connect",
                                                       "claude-otel"]
    assert document["base_url"] == sim.base_url and document["anthropic"] == anthropic.__version__
    fail = cli("--base-url", "http://nonexistent.invalid", "--max-tokens", "64000")
    assert fail.returncode == 2 and "FAIL  dns" in fail.stdout and "FAIL  streaming" in fail.stdout
    assert "Traceback" not in fail.stdout + fail.stderr

    from claude_otel.cli import main

    def in_process(*args):
        code = main(["doctor", *args])
        return code, capsys.readouterr().out

    code, text = in_process("--base-url", sim.base_url, "--timeout", "20")
    assert code == 1 and "WARN  timeout" in text and "fix:" in text
    monkeypatch.setenv("ANTHROPIC_BASE_URL", sim.base_url)
    code, text = in_process("--timeout", "0.001", "--json")
    forced = json.loads(text)
    assert {c["name"]: c["status"] for c in forced["checks"]}["forced-timeout"] == PASS
    assert forced["base_url"] == sim.base_url and code == 0
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://nonexistent.invalid")
    code, text = in_process("--offline", "--json")
    assert code == 0 and "dns" not in {c["name"] for c in json.loads(text)["checks"]}
    assert in_process("--timeout", "-1")[0] == 2
