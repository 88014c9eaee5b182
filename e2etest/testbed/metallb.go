package testbed

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
)

// MetalLBVersion is the MetalLB release the migration tests run. It must
// match e2etest/tools/metallb/VERSION and the version that module requires
// (a test checks it).
const MetalLBVersion = "v0.15.2"

// MetalLBModule is MetalLB's Go module.
const MetalLBModule = "go.universe.tf/metallb"

var metallbMu sync.Mutex

// MetalLBDir returns the directory that caches MetalLB's binaries:
// ${HERALD_CACHE:-$HOME/.cache/herald}/metallb-<MetalLBVersion>.
func MetalLBDir() string {
	return filepath.Join(filepath.Dir(KubeDir()), "metallb-"+MetalLBVersion)
}

// MetalLBBinary returns the path of MetalLB's "controller" or "speaker",
// built from the module MetalLBModule at MetalLBVersion by the tool module
// e2etest/tools/metallb (MetalLB is a test tool, never a dependency of
// Herald's module) the first time and cached in MetalLBDir.
func MetalLBBinary(ctx context.Context, repoRoot, name string) (string, error) {
	metallbMu.Lock()
	defer metallbMu.Unlock()
	out := filepath.Join(MetalLBDir(), "metallb-"+name)
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(MetalLBDir(), 0o755); err != nil {
		return "", err
	}
	tmp := out + ".tmp"
	if err := goBuild(ctx, filepath.Join(repoRoot, "e2etest", "tools", "metallb"), tmp, MetalLBModule+"/"+name); err != nil {
		return "", err
	}
	return out, os.Rename(tmp, out)
}

// MetalLBModuleDir returns the directory of MetalLB's module source (in the
// Go module cache), which holds its CRDs in config/crd/bases.
func MetalLBModuleDir(ctx context.Context, repoRoot string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", MetalLBModule)
	cmd.Dir = filepath.Join(repoRoot, "e2etest", "tools", "metallb")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go list -m %s: %w: %s", MetalLBModule, err, strings.TrimSpace(stderr.String()))
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		// Not downloaded yet: go mod download fills the module cache.
		dl := exec.CommandContext(ctx, "go", "mod", "download", MetalLBModule)
		dl.Dir = cmd.Dir
		if b, err := dl.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go mod download %s: %w: %s", MetalLBModule, err, b)
		}
		return MetalLBModuleDir(ctx, repoRoot)
	}
	return dir, nil
}

// ApplyMetalLBCRDs applies MetalLB's CRDs (config/crd/bases of its module:
// without the conversion webhook of its kustomize patch, so v1beta1 and
// v1beta2 BGPPeers convert with strategy None) and waits until they are
// Established.
//
// One edit: MetalLB v0.15's BGPPeer schema declares myASN and peerASN
// "format: int32" with "maximum: 4294967295", which kube-apiserver v1.36
// refuses at every create ("Maximum boundary value must be of type integer
// with format int32"); the edit drops that format (the values are still
// checked against 0..4294967295).
func (b *Bed) ApplyMetalLBCRDs(ctx context.Context) ([]string, error) {
	dir, err := MetalLBModuleDir(ctx, b.opts.RepoRoot)
	if err != nil {
		return nil, err
	}
	return b.applyCRDDir(ctx, filepath.Join(dir, "config", "crd", "bases"), fixASNFormat)
}

// asnFormat matches "format: int32" right before "maximum: 4294967295".
var asnFormat = regexp.MustCompile(`(?m)^(\s*)format: int32\n(\s*maximum: 4294967295)$`)

func fixASNFormat(data []byte) []byte {
	return asnFormat.ReplaceAll(data, []byte("$2"))
}

// RepoRoot is the main module's directory.
func (b *Bed) RepoRoot() string { return b.opts.RepoRoot }
