package testbed

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// KubeVersion is the Kubernetes release the bed runs. It must match
// e2etest/tools/kube/VERSION (a test checks it).
const KubeVersion = "v1.36.3"

const etcdBinary = "etcd"

// KubeDir returns the directory that caches the Kubernetes binaries:
// ${HERALD_CACHE:-$HOME/.cache/herald}/kube-<KubeVersion>.
func KubeDir() string {
	base := os.Getenv("HERALD_CACHE")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = "/root"
		}
		base = filepath.Join(home, ".cache", "herald")
	}
	return filepath.Join(base, "kube-"+KubeVersion)
}

// KubeBinary returns the path of a cached Kubernetes binary (kube-apiserver,
// kube-proxy), or an error that says how to build it.
func KubeBinary(name string) (string, error) {
	p := filepath.Join(KubeDir(), name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s %s is not built: run `make -C e2etest kube` (%w)", name, KubeVersion, err)
	}
	return p, nil
}

// FindRepoRoot walks up from dir to the directory whose go.mod declares
// github.com/heraldlb/herald.
func FindRepoRoot(dir string) (string, error) {
	d, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && bytes.HasPrefix(bytes.TrimSpace(b), []byte("module github.com/heraldlb/herald\n")) {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no go.mod of github.com/heraldlb/herald above %s", dir)
		}
		d = parent
	}
}

// HeraldBuildTags are the build tags of Herald's binaries, as the
// Makefile's BUILD_TAGS and the Dockerfile have them.
const HeraldBuildTags = "grpcnotrace"

// goBuild builds pkg from the module in dir into out, with extra go build
// flags.
func goBuild(ctx context.Context, dir, out, pkg string, flags ...string) error {
	args := append([]string{"build", "-o", out}, flags...)
	cmd := exec.CommandContext(ctx, "go", append(args, pkg)...)
	cmd.Dir = dir
	var buf bytes.Buffer
	cmd.Stdout = &buf
	cmd.Stderr = &buf
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %w: %s", pkg, err, strings.TrimSpace(buf.String()))
	}
	return nil
}

// HeraldBinary builds one of the project's commands (for example
// "controller" or "speaker", a directory of the main module) once per bed
// and returns its path.
func (b *Bed) HeraldBinary(ctx context.Context, name string) (string, error) {
	b.buildMu.Lock()
	defer b.buildMu.Unlock()
	if p, ok := b.built[name]; ok {
		return p, nil
	}
	out := filepath.Join(b.RunDir, "bin", name)
	if err := goBuild(ctx, b.opts.RepoRoot, out, "./"+name, "-tags", HeraldBuildTags); err != nil {
		return "", err
	}
	b.built[name] = out
	return out, nil
}
