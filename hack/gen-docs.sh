#!/usr/bin/env bash
# Regenerates docs/reference.md from config/crd/bases (hack/gendocs).
# With --check, fails instead when the committed file is stale.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/hack/gendocs"
go run . -crds "$root/config/crd/bases" -out "$root/docs/reference.md" ${1:+-check}
