#!/usr/bin/env bash
# Builds kube-apiserver and kube-proxy from the tools/kube module into the cache dir
# ${HERALD_CACHE:-$HOME/.cache/herald}/kube-<version>/, outside the repository so that a
# fresh clone reuses them. Skips the build when both binaries exist and report the
# pinned version.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
src="$here/tools/kube"
version="$(cat "$src/VERSION")"
out="${HERALD_CACHE:-$HOME/.cache/herald}/kube-${version}"

current() {
	local b="$out/$1"
	[[ -x "$b" ]] || return 1
	"$b" --version 2>/dev/null | grep -qF "$version"
}

if current kube-apiserver && current kube-proxy; then
	echo "kube binaries ${version} are current in ${out}"
	exit 0
fi

mkdir -p "$out"
start=$(date +%s)
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=${version} -X k8s.io/component-base/version.gitTreeState=clean"
for bin in kube-apiserver kube-proxy; do
	echo "building ${bin} ${version} into ${out} (first build takes several minutes)"
	(cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/${bin}.tmp" "./cmd/${bin}")
	mv -f "$out/${bin}.tmp" "$out/${bin}"
done
secs=$(( $(date +%s) - start ))
# Recorded so that the bed's tests can report the one-time build cost.
echo "$secs" >"$out/build-seconds"
echo "built kube binaries ${version} in ${secs}s"
