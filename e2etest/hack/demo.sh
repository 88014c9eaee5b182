#!/usr/bin/env bash
# `make demo` and `make demo-down`: Herald on one Linux machine, no Docker.
#
#   e2etest/hack/demo.sh up     # root: packages, kube binaries (first time ~9 min), bed + Herald
#   e2etest/hack/demo.sh down   # tears the demo's bed down by its recorded PIDs
#   KUBELET=1 e2etest/hack/demo.sh up   # real nodes: containerd + kubelet per node, Herald
#                                       # installed from `make images` and the manifest
#                                       # (first time: the kubelet build, 10-30 min)
#
# Extra arguments go to the demo program (`up -bgp=false` skips the BGP part).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
cmd=${1:-up}
shift || true
if [[ $(id -u) -ne 0 ]]; then
	echo "the demo needs root (network namespaces, veths, iptables): run it with sudo" >&2
	exit 1
fi
case $cmd in
up)
	if [[ ${KUBELET:-0} =~ ^(1|true|yes)$ ]]; then
		./hack/deps.sh nodes
		./hack/build-kube.sh nodes
		set -- -real-nodes "$@"
	else
		./hack/deps.sh
		./hack/build-kube.sh
	fi
	go build -o bin/demo ./cmd/demo
	exec ./bin/demo up "$@"
	;;
down)
	go build -o bin/demo ./cmd/demo
	exec ./bin/demo down "$@"
	;;
*)
	echo "usage: $0 up|down" >&2
	exit 2
	;;
esac
