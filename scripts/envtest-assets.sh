#!/usr/bin/env bash
# Prints the folder holding etcd, kube-apiserver and kube-controller-manager (KUBEBUILDER_ASSETS),
# preparing it first with .ci/setup-envtest.sh. Usage: export KUBEBUILDER_ASSETS="$(scripts/envtest-assets.sh)"
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
line="$(bash "${here}/../.ci/setup-envtest.sh" | tail -n 1)"
echo "${line#export KUBEBUILDER_ASSETS=}"
