#!/usr/bin/env bash
# Set-up for development and CI on a fresh machine: system packages (Prometheus, promtool, Alertmanager, amtool, tmux),
# the project venv (.venv) and one venv per SDK version of the test matrix (.venvs/anthropic-*).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
MATRIX=${CLAUDE_OTEL_SDK_MATRIX:-"0.40.0 0.108.0 1.0.0 1.14.0 2.15.0"}
# The newest SDK the suite is known to pass on, in .venv (a newer release changes what the tests observe: try it
# with ANTHROPIC_NEWEST=x.y.z bash tests/setup.sh, then move this pin).
NEWEST=${ANTHROPIC_NEWEST:-2.17.0}

need_apt=()
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v tmux >/dev/null 2>&1 || need_apt+=(tmux)
# Alertmanager (and amtool) for the paging tests and the fire drill
command -v prometheus-alertmanager >/dev/null 2>&1 || need_apt+=(prometheus-alertmanager)
command -v amtool >/dev/null 2>&1 || need_apt+=(prometheus-alertmanager)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== apt-get install ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "!! please install: ${need_apt[*]} (Debian/Ubuntu: sudo apt-get install ${need_apt[*]})" >&2
  fi
fi

# pip's output goes to a log that is shown only when the install fails.
pip_quiet() {
  local log
  log=$(mktemp)
  if ! "$@" -q --disable-pip-version-check >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    return 1
  fi
  rm -f "$log"
}

echo "== .venv (project + test dependencies, anthropic $NEWEST)"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip_quiet .venv/bin/pip install -e '.[test]' "anthropic[aiohttp]==$NEWEST"
.venv/bin/python -c "import claude_otel, anthropic; print('   anthropic', anthropic.__version__)"

echo "== SDK matrix venvs: $MATRIX"
mkdir -p .venvs
# claude-otel's own dependencies, read from pyproject.toml: the venvs install them side by side, and claude-otel
# itself afterwards, one venv at a time (an editable install writes the build metadata into this one tree).
deps=$(.venv/bin/python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))')
mapfile -t deps <<<"$deps"
pids=()
fresh=()
for version in $MATRIX; do
  venv=.venvs/anthropic-$version
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import anthropic, claude_otel, pytest, sys; import aiohttp; sys.exit(anthropic.__version__ != '$version')" 2>/dev/null; then
    continue
  fi
  fresh+=("$venv")
  (
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv"
    # the aiohttp extra: tests/test_sdk_surfaces.py tests DefaultAioHttpClient on every version that has it
    pip_quiet "$venv/bin/pip" install "${deps[@]}" "anthropic[aiohttp]==$version" aiohttp pytest pytest-asyncio
  ) &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
[ $status = 0 ] || exit $status
for venv in "${fresh[@]}"; do
  pip_quiet "$venv/bin/pip" install --no-deps -e .
done
for version in $MATRIX; do
  .venvs/anthropic-$version/bin/python -c "import anthropic, claude_otel; print('   .venvs/anthropic-$version: anthropic', anthropic.__version__)"
done
