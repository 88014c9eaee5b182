package main

import (
	"archive/tar"
	"bytes"
	"debug/buildinfo"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Spec says what goes into one image: a single static binary on a scratch
// base, plus the few files a static program needs (passwd, group, a
// writable-by-owner home) and the documents that say what it is made of.
type Spec struct {
	// Binary is the static executable; it becomes /<Name> in the image and the
	// entrypoint.
	Binary string
	// Name is the file name of the binary inside the image (herald-controller).
	Name string
	// Ref is the full image reference (ghcr.io/heraldlb/herald-controller:v0.1.0);
	// it is written into the archive's index so that `ctr images import`,
	// skopeo and podman name the image after it.
	Ref string
	// User is the config's User, "uid:gid" (65532:65532, or 0:0).
	User string
	// Args are the default arguments (the config's Cmd).
	Args []string
	// Labels go into the image config; the OCI ones (created, source, version,
	// revision, title, licenses) are filled by the caller.
	Labels map[string]string
	// Created is the only timestamp the image holds: the config's created, the
	// history, and every file's mtime. Use SOURCE_DATE_EPOCH (the commit time).
	Created time.Time
	// License is copied to /usr/share/doc/herald/LICENSE when set.
	License string
	// Extra files to add: image path -> host path (for example a CA bundle).
	Extra map[string]string
}

// docDir holds the license and the bill of materials inside the image.
const docDir = "usr/share/doc/herald"

// nonroot is the user of the controller image; the same id as distroless's
// "nonroot", so that the Dockerfile's images and these agree.
const nonrootID = 65532

// Build returns the image described by spec, with OCI media types.
func Build(spec Spec) (v1.Image, error) {
	bin, err := os.ReadFile(spec.Binary)
	if err != nil {
		return nil, err
	}
	info, err := buildinfo.ReadFile(spec.Binary)
	if err != nil {
		return nil, fmt.Errorf("%s: not a Go binary with build info: %w", spec.Binary, err)
	}
	goos, goarch := setting(info, "GOOS"), setting(info, "GOARCH")
	if goos == "" || goarch == "" {
		return nil, fmt.Errorf("%s: build info has no GOOS/GOARCH", spec.Binary)
	}
	if cgo := setting(info, "CGO_ENABLED"); cgo != "0" {
		return nil, fmt.Errorf("%s: built with CGO_ENABLED=%q; the image has no libc, build it with CGO_ENABLED=0", spec.Binary, cgo)
	}
	sbom, err := SPDX(spec.Name, bin, info, spec.Created)
	if err != nil {
		return nil, err
	}

	files := []file{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/group", mode: 0o644, data: []byte("root:x:0:\nnonroot:x:65532:\n")},
		{name: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{name: "home/", mode: 0o755, dir: true},
		{name: "home/nonroot/", mode: 0o700, dir: true, uid: nonrootID, gid: nonrootID},
		{name: "root/", mode: 0o700, dir: true},
		{name: "tmp/", mode: 0o1777, dir: true},
		{name: "usr/", mode: 0o755, dir: true},
		{name: "usr/share/", mode: 0o755, dir: true},
		{name: "usr/share/doc/", mode: 0o755, dir: true},
		{name: docDir + "/", mode: 0o755, dir: true},
		{name: docDir + "/" + spec.Name + ".modules.txt", mode: 0o644, data: []byte(info.String())},
		{name: docDir + "/" + spec.Name + ".spdx.json", mode: 0o644, data: sbom},
		{name: spec.Name, mode: 0o755, data: bin},
	}
	if spec.License != "" {
		lic, err := os.ReadFile(spec.License)
		if err != nil {
			return nil, err
		}
		files = append(files, file{name: docDir + "/LICENSE", mode: 0o644, data: lic})
	}
	for dst, src := range spec.Extra {
		data, err := os.ReadFile(src)
		if err != nil {
			return nil, err
		}
		files = append(files, file{name: strings.TrimPrefix(dst, "/"), mode: 0o644, data: data})
	}
	layerTar, err := tarFiles(files, spec.Created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}

	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: spec.Created},
			CreatedBy: "hack/tools/imagebuild: /" + spec.Name + " and its bill of materials",
			Comment:   "static Go binary on an empty base",
		},
	})
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.Created = v1.Time{Time: spec.Created}
	cfg.OS, cfg.Architecture = goos, goarch
	if v := setting(info, "GOARM"); goarch == "arm" && v != "" {
		cfg.Variant = "v" + strings.TrimSuffix(v, ",softfloat")
	}
	cfg.Config = v1.Config{
		User:       spec.User,
		Entrypoint: []string{"/" + spec.Name},
		Cmd:        spec.Args,
		Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		WorkingDir: "/",
		Labels:     spec.Labels,
	}
	return mutate.ConfigFile(img, cfg)
}

// WriteArchive writes img as an OCI image layout in a tar file at out: the
// entries sorted, owned by 0:0 and dated created, so that the same image
// always gives the same bytes. The index names the image ref.
func WriteArchive(img v1.Image, ref, out string, created time.Time) error {
	dir, err := os.MkdirTemp("", "imagebuild-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	err = p.AppendImage(img,
		layout.WithAnnotations(map[string]string{
			// The OCI name, and the one containerd's importer reads first.
			"org.opencontainers.image.ref.name": ref,
			"io.containerd.image.name":          ref,
		}),
		layout.WithPlatform(v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}),
	)
	if err != nil {
		return err
	}
	var files []file
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			files = append(files, file{name: rel + "/", mode: 0o755, dir: true})
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files = append(files, file{name: rel, mode: 0o644, data: data})
		return nil
	})
	if err != nil {
		return err
	}
	data, err := tarFiles(files, created)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	tmp := out + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}

type file struct {
	name     string // slash-separated, relative; directories end in "/"
	mode     int64
	dir      bool
	uid, gid int
	data     []byte
}

// tarFiles writes files in name order, with one fixed mtime and no user or
// group names: the archive depends only on the names, modes and contents.
func tarFiles(files []file, mtime time.Time) ([]byte, error) {
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i, f := range files {
		if i > 0 && files[i-1].name == f.name {
			return nil, fmt.Errorf("duplicate entry %s", f.name)
		}
		h := &tar.Header{
			Name:    f.name,
			Mode:    f.mode,
			Uid:     f.uid,
			Gid:     f.gid,
			ModTime: mtime.UTC(),
		}
		if f.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if !f.dir {
			if _, err := tw.Write(f.data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func setting(info *buildinfo.BuildInfo, key string) string {
	for _, s := range info.Settings {
		if s.Key == key {
			return s.Value
		}
	}
	return ""
}

// ReadArchive reads an archive that WriteArchive wrote: its one image, and the
// reference its index names. The image reads from a temporary directory that
// done removes.
func ReadArchive(path string) (img v1.Image, ref string, done func(), err error) {
	dir, err := os.MkdirTemp("", "imagebuild-")
	if err != nil {
		return nil, "", nil, err
	}
	done = func() { os.RemoveAll(dir) }
	defer func() {
		if err != nil {
			done()
		}
	}()
	if err := untar(path, dir); err != nil {
		return nil, "", nil, err
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, "", nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, "", nil, err
	}
	if len(im.Manifests) != 1 {
		return nil, "", nil, fmt.Errorf("%s: %d images in the index, want 1", path, len(im.Manifests))
	}
	desc := im.Manifests[0]
	if img, err = idx.Image(desc.Digest); err != nil {
		return nil, "", nil, err
	}
	return img, desc.Annotations["org.opencontainers.image.ref.name"], done, nil
}

func untar(path, dir string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(name, dir+string(filepath.Separator)) {
			return fmt.Errorf("%s: entry %q leaves the archive", path, h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(name, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
				return err
			}
			data, err := io.ReadAll(tr)
			if err != nil {
				return err
			}
			if err := os.WriteFile(name, data, 0o644); err != nil {
				return err
			}
		}
	}
}
