#!/usr/bin/env bash
# The anthropic SDK's own test suite (shipped in its sdist), run twice: plain, and with claude-otel instrumenting
# every test (tests/sdk_suite_plugin.py).  Outcomes are compared by test id; the differences that are expected are
# listed, each with its reason, in tests/sdk_suite_expected.txt.  Exits non-zero on an unexpected difference, on an
# expected one that no longer occurs, or on any error the agent logged.
#
#   bash tests/sdk_suite.sh            # SDK_SUITE_VERSION (2.15.0), SDK_SUITE_WORKERS (2), PYTHON (python3)
#
# Everything it fetches or builds lives in .sdk-suite/ (git-ignored) and is reused by the next run.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
VERSION=${SDK_SUITE_VERSION:-2.15.0}
WORKERS=${SDK_SUITE_WORKERS:-2}
PYTHON=${PYTHON:-python3}
cache=$repo/.sdk-suite
src=$cache/anthropic-$VERSION
venv=$cache/venv-$VERSION
runs=$cache/runs-$VERSION
start=$(date +%s)

# pip's output goes to a log that is shown only when the command fails.
quiet() {
  local log
  log=$(mktemp)
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    return 1
  fi
  rm -f "$log"
}

mkdir -p "$cache"
[ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv"

# 1. The sdist, unpacked.
if [ ! -f "$src/pyproject.toml" ]; then
  echo "== sdk-suite: fetching the anthropic $VERSION sdist"
  rm -rf "$cache/dl-$VERSION" "$src"
  quiet "$venv/bin/pip" download --disable-pip-version-check --no-binary :all: --no-deps \
    "anthropic==$VERSION" -d "$cache/dl-$VERSION"
  tar -xzf "$cache/dl-$VERSION/anthropic-$VERSION.tar.gz" -C "$cache"
fi

# 2. The SDK with its extras that the tests import, its test dependencies (the versions of its
#    requirements-dev.lock) and claude-otel, editable.  A stamp skips this when nothing changed.
extras=aiohttp,bedrock,mcp,webhooks
test_deps="respx pytest pytest-asyncio pytest-xdist time-machine dirty-equals hypothesis inline-snapshot
  http-snapshot[httpx] packaging importlib-metadata rich griffe opentelemetry-sdk"
stamp=$venv/.sdk-suite-ready
want="$VERSION [$extras] $test_deps $(cksum <"$repo/pyproject.toml")"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "== sdk-suite: installing anthropic $VERSION (from the sdist), its test dependencies and claude-otel"
  constraints=$cache/constraints-$VERSION.txt
  grep -vE '^[[:space:]]*(#|-e|$)' "$src/requirements-dev.lock" >"$constraints"
  # shellcheck disable=SC2086  # test_deps is a list of words
  (set -f; quiet "$venv/bin/pip" install --disable-pip-version-check -c "$constraints" "$src[$extras]" $test_deps)
  quiet "$venv/bin/pip" install --disable-pip-version-check -c "$constraints" -e "$repo"
  echo "$want" >"$stamp"
fi
"$venv/bin/python" -c "import anthropic, claude_otel; assert anthropic.__version__ == '$VERSION', anthropic.__version__"
echo "== sdk-suite: set-up took $(( $(date +%s) - start )) s"

# 3. The two runs, one after the other (each uses every core).  tests/ is on PYTHONPATH for the plugins;
#    the SDK's own `tests` package is found first (its pytest `pythonpath` is its root).
rm -rf "$runs"
mkdir -p "$runs"
run() {
  local name=$1
  shift
  local t0
  t0=$(date +%s)
  (
    cd "$src"
    # A run's result is its outcomes file: the suite's own exit status is not used (the plain run has failures).
    SDK_SUITE_OUTCOMES="$runs/$name.json" PYTHONPATH="$repo/tests${PYTHONPATH:+:$PYTHONPATH}" \
      "$venv/bin/python" -m pytest -n "$WORKERS" -p no:cacheprovider -p sdk_suite_common -q --no-header \
      -o console_output_style=classic "$@" >"$runs/$name.log" 2>&1 || true
  )
  echo "== sdk-suite: $name run took $(( $(date +%s) - t0 )) s ($(tail -n 1 "$runs/$name.log"))"
  if [ ! -s "$runs/$name.json" ]; then
    echo "!! sdk-suite: the $name run recorded no outcomes; the end of its log ($runs/$name.log):" >&2
    tail -n 40 "$runs/$name.log" >&2
    exit 1
  fi
}
run plain
SDK_SUITE_AGENT_ERRORS="$runs/agent-errors" run instrumented -p sdk_suite_plugin

# 4. The comparison.
status=0
"$venv/bin/python" "$repo/tests/sdk_suite_compare.py" "$runs/plain.json" "$runs/instrumented.json" \
  "$repo/tests/sdk_suite_expected.txt" "$runs/agent-errors" || status=$?
echo "== sdk-suite: took $(( $(date +%s) - start )) s in all; logs in $runs"
exit $status
