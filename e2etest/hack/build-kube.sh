#!/usr/bin/env bash
# Builds the Kubernetes binaries the test bed runs from the tools/kube module into the
# cache dir ${HERALD_CACHE:-$HOME/.cache/herald}/kube-<version>/, outside the repository
# so that a fresh clone reuses them. Skips every binary that exists and reports the
# pinned version.
#
#   build-kube.sh          kube-apiserver and kube-proxy (the process-based bed)
#   build-kube.sh nodes    also kubelet, kube-controller-manager and kube-scheduler
#                          (the real-nodes bed; the kubelet takes 10-20 min cold)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
src="$here/tools/kube"
version="$(cat "$src/VERSION")"
out="${HERALD_CACHE:-$HOME/.cache/herald}/kube-${version}"

bins=(kube-apiserver kube-proxy)
if [[ "${1:-}" == nodes ]]; then
	bins+=(kube-controller-manager kube-scheduler kubelet)
fi

current() {
	local b="$out/$1"
	[[ -x "$b" ]] || return 1
	"$b" --version 2>/dev/null | grep -qF "$version"
}

todo=()
for bin in "${bins[@]}"; do
	current "$bin" || todo+=("$bin")
done
if [[ ${#todo[@]} -eq 0 ]]; then
	echo "kube binaries ${version} are current in ${out}: ${bins[*]}"
	exit 0
fi

mkdir -p "$out"
start=$(date +%s)
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=${version} -X k8s.io/component-base/version.gitTreeState=clean"
for bin in "${todo[@]}"; do
	echo "building ${bin} ${version} into ${out} (first build takes several minutes)"
	# A per-process temporary name: concurrent builds (two checkouts) never write
	# the same file; the rename is atomic.
	(cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/${bin}.tmp.$$" "./cmd/${bin}")
	mv -f "$out/${bin}.tmp.$$" "$out/${bin}"
done
secs=$(( $(date +%s) - start ))
# Recorded so that the bed's tests can report the one-time build cost.
echo "$secs" >"$out/build-seconds"
echo "built ${todo[*]} ${version} in ${secs}s"
