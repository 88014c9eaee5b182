# Herald's build. `make help` lists the targets.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/heraldlb/herald/internal/version.Version=$(VERSION)
# grpcnotrace leaves golang.org/x/net/trace out of the speaker (GoBGP's API
# imports gRPC): its init registers /debug/requests and /debug/events, and its
# html/template makes the linker keep every exported method of every type,
# which made the speaker 70 MB instead of 42 and cost 11 MiB of RSS on every
# node. The Dockerfile and the e2e beds build with the same tags; speaker's
# TestBuildKeepsDeadCodeElimination checks all three.
BUILD_TAGS := grpcnotrace
BIN := $(CURDIR)/bin
GO ?= go

# Pinned tools, installed into ./bin by the targets that need them.
CONTROLLER_GEN_VERSION := v0.19.0
GOLANGCI_LINT_VERSION := v2.6.0
CONTROLLER_GEN := $(BIN)/controller-gen-$(CONTROLLER_GEN_VERSION)
GOLANGCI_LINT := $(BIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)

.PHONY: help
help: ## List the targets.
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

.PHONY: build
build: ## Build bin/herald-controller, bin/herald-speaker and the kubectl plugin bin/kubectl-herald, version-stamped.
	CGO_ENABLED=0 $(GO) build -trimpath -tags '$(BUILD_TAGS)' -ldflags '$(LDFLAGS)' -o $(BIN)/herald-controller ./controller
	CGO_ENABLED=0 $(GO) build -trimpath -tags '$(BUILD_TAGS)' -ldflags '$(LDFLAGS)' -o $(BIN)/herald-speaker ./speaker
	CGO_ENABLED=0 $(GO) build -trimpath -tags '$(BUILD_TAGS)' -ldflags '$(LDFLAGS)' -o $(BIN)/kubectl-herald ./kubectl-herald

$(CONTROLLER_GEN):
	GOBIN=$(BIN) $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
	mv $(BIN)/controller-gen $@

$(GOLANGCI_LINT):
	GOBIN=$(BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(BIN)/golangci-lint $@

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Regenerate deepcopy code, the CRDs, the all-in-one manifests, the chart's copies and docs/reference.md.
	$(CONTROLLER_GEN) object paths=./api/...
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	hack/gen-manifests.sh
	hack/gen-docs.sh

.PHONY: verify
verify: generate ## Fail when generated files, gofmt, go vet or go mod tidy differ from what is committed.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) mod tidy -diff
	cd e2etest && $(GO) vet ./... && $(GO) mod tidy -diff
	cd hack/tools/imagebuild && $(GO) vet ./... && $(GO) mod tidy -diff
	cd e2etest/tools/metallb && $(GO) mod tidy -diff
	@if ! git diff --quiet -- api config || [ -n "$$(git ls-files --others --exclude-standard -- api config)" ]; then \
		echo "generated files are stale; run 'make generate' and commit:"; git status --short -- api config; exit 1; fi
	hack/verify-generated.sh

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint.
	$(GOLANGCI_LINT) run ./...

.PHONY: unit
unit: ## Unit tests of the pure and library packages (no root needed for most), and of the image builder.
	$(GO) test -count=1 ./...
	cd hack/tools/imagebuild && $(GO) test -count=1 ./...

.PHONY: test
test: unit ## Every test: unit, then the real control plane and data plane (root).
	$(MAKE) -C e2etest test

.PHONY: bench
bench: ## Benchmarks of the decision packages, with their figures.
	$(GO) test -run '^$$' -bench . -benchmem ./internal/...

.PHONY: bench-e2e
bench-e2e: ## Benchmarks on the test bed (root): controller backlog vs the API ceiling; ARP latency and speaker RSS at 10,000 IPs; speaker work in a 500-Service burst.
	$(MAKE) -C e2etest deps kube
	cd e2etest && $(GO) test -count=1 -v -run '^$$' -bench 'BenchmarkControllerBacklog|BenchmarkSpeakerScale|BenchmarkSpeakerBurst' -benchtime 1x -timeout 60m .

.PHONY: demo
demo: ## Herald on this machine (root, no Docker): test bed, controller, 3 speakers, L2 + BGP Services; prints how to curl them. KUBELET=1: as pods on real kubelets, from make images and the manifest.
	KUBELET=$(KUBELET) e2etest/hack/demo.sh up

.PHONY: demo-down
demo-down: ## Tear the demo down.
	e2etest/hack/demo.sh down

.PHONY: manifests
manifests: ## Regenerate config/manifests/*.yaml, config/crd/kustomization.yaml and the chart's copies of config/.
	hack/gen-manifests.sh

.PHONY: docs
docs: ## Regenerate docs/reference.md from the CRDs.
	hack/gen-docs.sh

# Images: one static binary each on an empty base, built without a container
# engine by hack/tools/imagebuild (go-containerregistry), as OCI image-layout
# tarballs. Reproducible: the only timestamp is the commit's time.
IMAGE_REGISTRY ?= ghcr.io/heraldlb
IMAGE_TAG ?= $(VERSION)
IMAGE_SOURCE := https://github.com/heraldlb/herald
IMAGES_DIR := $(BIN)/images
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
IMAGEBUILD := $(BIN)/imagebuild
IMAGE_LABELS = -label org.opencontainers.image.source=$(IMAGE_SOURCE) \
	-label org.opencontainers.image.version=$(IMAGE_TAG) \
	-label org.opencontainers.image.revision=$(REVISION) \
	-label org.opencontainers.image.licenses=Apache-2.0 \
	-label org.opencontainers.image.vendor=Herald

.PHONY: imagebuild
imagebuild:
	$(GO) build -C hack/tools/imagebuild -trimpath -o $(IMAGEBUILD) .

.PHONY: images
images: build imagebuild ## Build bin/images/herald-{controller,speaker}.tar: OCI image archives, reproducible, no Docker needed.
	SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) $(IMAGEBUILD) build -binary $(BIN)/herald-controller \
		-ref $(IMAGE_REGISTRY)/herald-controller:$(IMAGE_TAG) -user 65532:65532 -license LICENSE $(IMAGE_LABELS) \
		-label "org.opencontainers.image.description=Herald controller: allocates LoadBalancer IPs" \
		-out $(IMAGES_DIR)/herald-controller.tar
	SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) $(IMAGEBUILD) build -binary $(BIN)/herald-speaker \
		-ref $(IMAGE_REGISTRY)/herald-speaker:$(IMAGE_TAG) -user 0:0 -license LICENSE $(IMAGE_LABELS) \
		-label "org.opencontainers.image.description=Herald speaker: announces LoadBalancer IPs (ARP/NDP, BGP)" \
		-out $(IMAGES_DIR)/herald-speaker.tar

.PHONY: images-push
images-push: images ## Push both images to IMAGE_REGISTRY with the Docker credentials (~/.docker/config.json).
	$(IMAGEBUILD) push $(IMAGES_DIR)/herald-controller.tar
	$(IMAGEBUILD) push $(IMAGES_DIR)/herald-speaker.tar

.PHONY: image
image: ## Build both images with Docker instead (needs a container engine; none on the project's CI machines).
	docker build --target controller --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) -t ghcr.io/heraldlb/herald-controller:$(VERSION) .
	docker build --target speaker --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) -t ghcr.io/heraldlb/herald-speaker:$(VERSION) .

.PHONY: testbed
testbed: ## Bring the local test bed up (root) and print how to use it.
	$(MAKE) -C e2etest up

.PHONY: testbed-down
testbed-down: ## Tear the local test bed down.
	$(MAKE) -C e2etest down

.PHONY: clean
clean: ## Remove build outputs.
	rm -rf $(BIN)
