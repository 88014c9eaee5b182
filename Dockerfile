# syntax=docker/dockerfile:1
#
# Herald's two images, from one build stage:
#   docker build --target controller --build-arg VERSION=v0.1.0 --build-arg REVISION=$(git rev-parse HEAD) -t ghcr.io/heraldlb/herald-controller:v0.1.0 .
#   docker build --target speaker    --build-arg VERSION=v0.1.0 --build-arg REVISION=$(git rev-parse HEAD) -t ghcr.io/heraldlb/herald-speaker:v0.1.0 .
# Multi-arch: add --platform linux/amd64,linux/arm64 (docker buildx); the Go
# toolchain cross-compiles, so the build stage runs on the builder's platform.

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
ARG TARGETOS=linux
ARG TARGETARCH
ARG VERSION=dev
WORKDIR /src
# Dependencies first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY api/ api/
COPY internal/ internal/
COPY controller/ controller/
COPY speaker/ speaker/
# Static binaries, stamped and tagged like `make build` (grpcnotrace: see
# the Makefile's BUILD_TAGS).
ENV CGO_ENABLED=0
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    set -eu; \
    ldflags="-s -w -X github.com/heraldlb/herald/internal/version.Version=${VERSION}"; \
    GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -tags grpcnotrace -ldflags "$ldflags" -o /out/herald-controller ./controller; \
    GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -tags grpcnotrace -ldflags "$ldflags" -o /out/herald-speaker ./speaker

# The speaker needs NET_RAW and NET_ADMIN, which Kubernetes grants to root
# only: its image runs as root, and its DaemonSet sets runAsUser: 0 and drops
# every other capability. `make images` builds the same two images without
# Docker (hack/tools/imagebuild), with the same users and labels.
FROM gcr.io/distroless/static-debian12:nonroot AS speaker
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="herald-speaker" \
      org.opencontainers.image.description="Herald speaker: announces LoadBalancer IPs (ARP/NDP, BGP)" \
      org.opencontainers.image.source="https://github.com/heraldlb/herald" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/herald-speaker /herald-speaker
USER 0:0
ENTRYPOINT ["/herald-speaker"]

# Last, so that a plain `docker build .` builds the controller.
FROM gcr.io/distroless/static-debian12:nonroot AS controller
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="herald-controller" \
      org.opencontainers.image.description="Herald controller: allocates LoadBalancer IPs" \
      org.opencontainers.image.source="https://github.com/heraldlb/herald" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/herald-controller /herald-controller
USER 65532:65532
ENTRYPOINT ["/herald-controller"]
