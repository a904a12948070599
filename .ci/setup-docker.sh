#!/usr/bin/env bash
# Installs podman, whose Docker-compatible API (`podman system service`) the Docker tests
# (tests/docker_*.rs) start on a private unix socket. Idempotent; runs as root on Debian 12.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if ! command -v podman >/dev/null 2>&1; then
  # CI machines start with an empty apt cache; refresh it only when we must install.
  apt-get update
  apt-get install -y --no-install-recommends podman
fi
podman --version
