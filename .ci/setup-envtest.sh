#!/usr/bin/env bash
# Installs the real Kubernetes control plane the tests run against (envtest style):
# etcd from Debian, kube-apiserver and kube-controller-manager unpacked from ../shared/envtest
# into a cache folder that src/local finds by itself (no exported variable needed).
# Idempotent: a second run installs and unpacks nothing.
set -euo pipefail

repo_root="$(git -C "$(dirname "$0")" rev-parse --show-toplevel 2>/dev/null || (cd "$(dirname "$0")/.." && pwd))"
version="1.20.2"
cache_dir="${JSMCP_ENVTEST_CACHE:-${HOME}/.cache/js-mcp/envtest-${version}}"
shared_dir="${repo_root}/../shared/envtest"

# Packages: etcd (the API server's store), xz to unpack, openssl for people debugging certs.
need_pkgs=()
command -v etcd >/dev/null 2>&1 || need_pkgs+=(etcd-server)
command -v xz >/dev/null 2>&1 || need_pkgs+=(xz-utils)
command -v openssl >/dev/null 2>&1 || need_pkgs+=(openssl)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
  # apt lists are absent on a fresh machine: update once, only when something must be installed.
  if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e '^lock$' -e '^partial$' || true)" ]; then
    $sudo apt-get update
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${need_pkgs[@]}" \
    || { $sudo apt-get update && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${need_pkgs[@]}"; }
fi

mkdir -p "${cache_dir}"
for bin in kube-apiserver kube-controller-manager; do
  if [ -x "${cache_dir}/${bin}" ]; then
    continue
  fi
  if [ ! -f "${shared_dir}/${bin}.xz" ]; then
    echo "setup-envtest: ${shared_dir}/${bin}.xz not found; install envtest binaries with setup-envtest" \
      "(go install sigs.k8s.io/controller-runtime/tools/setup-envtest@latest && setup-envtest use)" >&2
    exit 1
  fi
  # Unpack to a temporary name first so an interrupted run never leaves a truncated binary behind.
  xz -dc "${shared_dir}/${bin}.xz" > "${cache_dir}/.${bin}.tmp"
  chmod +x "${cache_dir}/.${bin}.tmp"
  mv "${cache_dir}/.${bin}.tmp" "${cache_dir}/${bin}"
done

# envtest expects etcd beside the other binaries.
if [ ! -e "${cache_dir}/etcd" ]; then
  ln -s "$(command -v etcd)" "${cache_dir}/etcd"
fi

echo "export KUBEBUILDER_ASSETS=${cache_dir}"
