package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// goBinary builds a small static program with the module's toolchain, the way
// `make build` builds Herald's binaries.
func goBinary(t *testing.T, dir string) string {
	t.Helper()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(src, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/hello\n\ngo 1.26\n")
	write("main.go", "package main\n\nfunc main() { println(\"hello\") }\n")
	bin := filepath.Join(dir, "hello")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func testSpec(bin string) Spec {
	return Spec{
		Binary: bin,
		Name:   "herald-controller",
		Ref:    "ghcr.io/heraldlb/herald-controller:v9.9.9",
		User:   "65532:65532",
		Labels: map[string]string{
			"org.opencontainers.image.source":   "https://github.com/heraldlb/herald",
			"org.opencontainers.image.version":  "v9.9.9",
			"org.opencontainers.image.revision": "0123456789abcdef0123456789abcdef01234567",
		},
		Created: time.Unix(1700000000, 0).UTC(),
	}
}

func build(t *testing.T, spec Spec, out string) string {
	t.Helper()
	img, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteArchive(img, spec.Ref, out, spec.Created); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func fileSHA(t *testing.T, path string) [32]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(data)
}

// TestReproducible builds the same image twice, an hour apart as far as the
// file system can tell, and wants the same digest and the same archive bytes;
// a different version label must change the digest.
func TestReproducible(t *testing.T) {
	dir := t.TempDir()
	bin := goBinary(t, dir)
	spec := testSpec(bin)

	a := filepath.Join(dir, "a", "image.tar")
	d1 := build(t, spec, a)
	// Touch the binary: its mtime must not reach the image.
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(bin, later, later); err != nil {
		t.Fatal(err)
	}
	b := filepath.Join(dir, "b", "image.tar")
	d2 := build(t, spec, b)
	if d1 != d2 {
		t.Fatalf("same inputs, digests differ: %s vs %s", d1, d2)
	}
	if fileSHA(t, a) != fileSHA(t, b) {
		t.Fatalf("same inputs, archives differ")
	}
	t.Logf("digest of both builds: %s", d1)

	spec.Labels = map[string]string{"org.opencontainers.image.version": "v9.9.10"}
	if d3 := build(t, spec, filepath.Join(dir, "c", "image.tar")); d3 == d1 {
		t.Fatalf("another version label kept the digest %s", d3)
	}
}

// TestImageContents reads an archive back and checks what Kubernetes and a
// registry see: the reference in the index, the user, entrypoint, platform,
// labels, and a layer whose entries are sorted, dated at the creation time and
// include the binary and its bill of materials.
func TestImageContents(t *testing.T) {
	dir := t.TempDir()
	bin := goBinary(t, dir)
	spec := testSpec(bin)
	out := filepath.Join(dir, "image.tar")
	want := build(t, spec, out)

	img, ref, done, err := ReadArchive(out)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	if ref != spec.Ref {
		t.Errorf("ref.name %q, want %q", ref, spec.Ref)
	}
	if d, _ := img.Digest(); d.String() != want {
		t.Errorf("digest read back %s, want %s", d, want)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Config.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532", cfg.Config.User)
	}
	if got := strings.Join(cfg.Config.Entrypoint, " "); got != "/herald-controller" {
		t.Errorf("entrypoint %q", got)
	}
	if cfg.OS != "linux" || cfg.Architecture == "" {
		t.Errorf("platform %s/%s", cfg.OS, cfg.Architecture)
	}
	if !cfg.Created.Time.Equal(spec.Created) {
		t.Errorf("created %v, want %v", cfg.Created, spec.Created)
	}
	for k, v := range spec.Labels {
		if cfg.Config.Labels[k] != v {
			t.Errorf("label %s=%q, want %q", k, cfg.Config.Labels[k], v)
		}
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != "application/vnd.oci.image.manifest.v1+json" || m.Config.MediaType != "application/vnd.oci.image.config.v1+json" {
		t.Errorf("media types %s / %s, want OCI", m.MediaType, m.Config.MediaType)
	}

	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %d, %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var names []string
	contents := map[string][]byte{}
	owners := map[string]int{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		owners[h.Name] = h.Uid
		if !h.ModTime.Equal(spec.Created) {
			t.Errorf("%s: mtime %v, want %v", h.Name, h.ModTime, spec.Created)
		}
		data, _ := io.ReadAll(tr)
		contents[h.Name] = data
	}
	if !sort.StringsAreSorted(names) {
		t.Errorf("layer entries not sorted: %v", names)
	}
	binData, _ := os.ReadFile(bin)
	if !bytes.Equal(contents["herald-controller"], binData) {
		t.Errorf("/herald-controller is not the binary")
	}
	if !strings.Contains(string(contents["etc/passwd"]), "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd has no nonroot user:\n%s", contents["etc/passwd"])
	}
	if owners["home/nonroot/"] != 65532 {
		t.Errorf("/home/nonroot owned by %d", owners["home/nonroot/"])
	}
	mods := string(contents["usr/share/doc/herald/herald-controller.modules.txt"])
	if !strings.Contains(mods, "mod\texample.com/hello") || !strings.Contains(mods, "CGO_ENABLED=0") {
		t.Errorf("module list:\n%s", mods)
	}
	var sbom struct {
		SPDXVersion string `json:"spdxVersion"`
		Packages    []struct {
			Name string `json:"name"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(contents["usr/share/doc/herald/herald-controller.spdx.json"], &sbom); err != nil {
		t.Fatalf("SPDX: %v", err)
	}
	if sbom.SPDXVersion != "SPDX-2.3" || len(sbom.Packages) < 2 || sbom.Packages[1].Name != "example.com/hello" {
		t.Errorf("SPDX document: %+v", sbom)
	}

	// The archive itself: sorted entries, one mtime, owned by root.
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	outer := tar.NewReader(f)
	names = nil
	for {
		h, err := outer.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if !h.ModTime.Equal(spec.Created) || h.Uid != 0 || h.Uname != "" {
			t.Errorf("archive entry %s: mtime %v uid %d uname %q", h.Name, h.ModTime, h.Uid, h.Uname)
		}
	}
	if !sort.StringsAreSorted(names) || !contains(names, "index.json") || !contains(names, "oci-layout") {
		t.Errorf("archive entries: %v", names)
	}
}

// TestRefusesNonGo: the bill of materials comes from the Go build info, so a
// file without one is refused.
func TestRefusesNonGo(t *testing.T) {
	dir := t.TempDir()
	bin := goBinary(t, dir)
	spec := testSpec(bin)
	spec.Binary = filepath.Join(dir, "src", "main.go")
	if _, err := Build(spec); err == nil || !strings.Contains(err.Error(), "build info") {
		t.Fatalf("built an image from a Go source file: %v", err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
