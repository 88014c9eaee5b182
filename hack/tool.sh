#!/usr/bin/env bash
# Prints the path of a pinned tool (helm or kustomize), building it first from
# its Go module in hack/tools/<name>/ when the cached binary is missing. The
# binaries live in ${HERALD_CACHE:-~/.cache/herald}/tools, outside the repo.
#
#   hack/tool.sh helm        -> .../tools/helm-v3.19.0
#   hack/tool.sh kustomize   -> .../tools/kustomize-v5.7.1
set -euo pipefail

name=${1:?usage: hack/tool.sh helm|kustomize}
root=$(cd "$(dirname "$0")/.." && pwd)
case $name in
helm) pkg=helm.sh/helm/v3/cmd/helm ;;
kustomize) pkg=sigs.k8s.io/kustomize/kustomize/v5 ;;
*) echo "hack/tool.sh: unknown tool $name" >&2; exit 2 ;;
esac
moddir=$root/hack/tools/$name
mod=${pkg%/cmd/helm}
# The version is the one go.mod pins, so bumping go.mod rebuilds the tool.
version=$(cd "$moddir" && go list -m -f '{{.Version}}' "$mod")
cache=${HERALD_CACHE:-$HOME/.cache/herald}/tools
bin=$cache/$name-$version
if [[ ! -x $bin ]]; then
	mkdir -p "$cache"
	echo "building $name $version into $cache (first time only)" >&2
	(cd "$moddir" && CGO_ENABLED=0 go build -trimpath -o "$bin.tmp" "$pkg") >&2
	mv "$bin.tmp" "$bin"
fi
echo "$bin"
