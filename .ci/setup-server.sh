#!/usr/bin/env bash
# Installs what the `js-mcp serve` tests need (idempotent; runs as root on Debian 12):
# - redis-server: the Redis session-store tests start their own instance on loopback;
# - a Python venv (.venv-tests/) with the official MCP Python SDK for tests/server_clients.rs;
# - the official MCP TypeScript SDK and conformance suite under tests/clients/ (npm).
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
if [ "${#need_apt[@]}" -gt 0 ]; then
  apt-get update
  apt-get install -y --no-install-recommends "${need_apt[@]}"
fi
# The tests start their own redis-server; a distro service instance is not needed.

if [ -f tests/clients/requirements.txt ]; then
  if [ ! -x .venv-tests/bin/python ]; then
    python3 -m venv .venv-tests
  fi
  .venv-tests/bin/pip install --quiet --disable-pip-version-check -r tests/clients/requirements.txt
fi

if [ -f tests/clients/package.json ]; then
  (cd tests/clients && npm install --no-audit --no-fund --loglevel=error)
fi
