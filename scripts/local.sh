#!/usr/bin/env bash
# Brings js-mcp up with no cluster: installs etcd and unpacks the control-plane binaries
# (first run only), then runs `js-mcp local` with the example instance. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup-envtest.sh >/dev/null
exec cargo run --release -- local "$@"
