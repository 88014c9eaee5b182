package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestBuildKeepsDeadCodeElimination builds the speaker and the controller
// as `make build` does and fails when the linker had to keep every exported
// method of every type: a reachable call of reflect's Method or MethodByName
// with a name it cannot see (text/template's field evaluation, reached from
// golang.org/x/net/trace's init through gRPC) marks the binary
// <ReflectMethod>, and the speaker grew from 42 to 70 MB, 11 MiB of it
// resident on every node. It also checks that the Dockerfile and the e2e
// beds build with the Makefile's tags.
func TestBuildKeepsDeadCodeElimination(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two binaries")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	m := regexp.MustCompile(`(?m)^BUILD_TAGS := (\S+)$`).FindStringSubmatch(read("Makefile"))
	if m == nil {
		t.Fatal("Makefile: no BUILD_TAGS line")
	}
	tags := m[1]
	if n := strings.Count(read("Dockerfile"), "go build -trimpath -tags "+tags+" "); n != 2 {
		t.Errorf("Dockerfile: %d of its 2 go builds use -tags %s", n, tags)
	}
	if !strings.Contains(read("e2etest/testbed/binaries.go"), `HeraldBuildTags = "`+tags+`"`) {
		t.Errorf("e2etest/testbed/binaries.go: HeraldBuildTags is not %q", tags)
	}
	for _, pkg := range []string{"./speaker", "./controller"} {
		cmd := exec.Command("go", "build", "-trimpath", "-tags", tags, "-ldflags=-dumpdep", "-o", filepath.Join(t.TempDir(), "bin"), pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		var deps, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stderr, &deps // -dumpdep writes to the linker's stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("go build %s: %v: %s", pkg, err, stderr.String())
		}
		var keepAll []string
		trace := false
		for l := range strings.SplitSeq(deps.String(), "\n") {
			from, _, _ := strings.Cut(l, " -> ")
			if name, ok := strings.CutSuffix(from, " <ReflectMethod>"); ok && !slices.Contains(keepAll, name) {
				keepAll = append(keepAll, name)
			}
			trace = trace || strings.HasPrefix(from, "golang.org/x/net/trace.")
		}
		if len(keepAll) > 0 {
			t.Errorf("%s: the linker keeps every exported method, because of %v", pkg, keepAll)
		}
		if trace {
			t.Errorf("%s links golang.org/x/net/trace (its /debug/requests handlers and its templates)", pkg)
		}
	}
}
