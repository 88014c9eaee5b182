#!/usr/bin/env bash
# Fails when a file derived from config/ or api/ is stale: the all-in-one
# manifests, the CRD list, the chart's CRDs, docs/reference.md. Also lints
# the Helm chart and checks that the chart's defaults render the objects of
# config/manifests/herald.yaml. Run after `make generate`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
hack/gen-manifests.sh
hack/gen-docs.sh
paths=(config/manifests config/crd/kustomization.yaml charts/herald/crds docs/reference.md)
if ! git diff --quiet -- "${paths[@]}" || [[ -n $(git ls-files --others --exclude-standard -- "${paths[@]}") ]]; then
	echo "generated files are stale; run hack/gen-manifests.sh and hack/gen-docs.sh, and commit:" >&2
	git status --short -- "${paths[@]}" >&2
	exit 1
fi
helm=$(hack/tool.sh helm)
"$helm" lint --strict charts/herald
(cd e2etest && go test -count=1 -run 'TestHelmChart' .)
(cd hack/gendocs && go vet ./... && gofmt -l . | (! grep .))
for m in hack/gendocs hack/tools/helm hack/tools/kustomize; do
	(cd "$m" && go mod tidy -diff)
done
