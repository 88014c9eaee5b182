// Command imagebuild builds Herald's container images without a container
// engine: each image is one static Go binary on an empty base, with
// /etc/passwd, the license and a bill of materials (SPDX JSON and the Go module
// list), written as an OCI image layout in a tar file. The output is
// reproducible: the same binary, flags and SOURCE_DATE_EPOCH give the same
// bytes, so the same digest.
//
//	imagebuild build -binary bin/herald-controller -ref ghcr.io/heraldlb/herald-controller:v0.1.0 \
//	    -user 65532:65532 -label org.opencontainers.image.version=v0.1.0 -out bin/images/herald-controller.tar
//	imagebuild inspect bin/images/herald-controller.tar
//	imagebuild push bin/images/herald-controller.tar [REF]
//
// `push` uses the Docker credential helpers and config (~/.docker/config.json),
// as `docker login` or `crane auth login` leave them.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "build":
		err = cmdBuild(os.Args[2:])
	case "inspect":
		err = cmdInspect(os.Args[2:])
	case "push":
		err = cmdPush(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "imagebuild:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: imagebuild build|inspect|push ... (see the package comment)")
	os.Exit(2)
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func cmdBuild(args []string) error {
	fs := flag.NewFlagSet("build", flag.ExitOnError)
	binary := fs.String("binary", "", "static Go binary (required)")
	imgName := fs.String("name", "", "file name of the binary in the image (default: the binary's base name)")
	ref := fs.String("ref", "", "image reference written into the archive (required)")
	user := fs.String("user", fmt.Sprintf("%d:%d", nonrootID, nonrootID), "the image's user, uid:gid")
	out := fs.String("out", "", "output tar file (required)")
	created := fs.String("created", os.Getenv("SOURCE_DATE_EPOCH"), "the image's only timestamp, in Unix seconds (default $SOURCE_DATE_EPOCH, else 0)")
	license := fs.String("license", "", "license file to copy into the image")
	var labels, cmdArgs multi
	fs.Var(&labels, "label", "key=value config label (repeatable)")
	fs.Var(&cmdArgs, "arg", "default argument (repeatable)")
	_ = fs.Parse(args)
	if *binary == "" || *ref == "" || *out == "" {
		return errors.New("build: -binary, -ref and -out are required")
	}
	if _, err := name.ParseReference(*ref, name.StrictValidation); err != nil {
		return fmt.Errorf("build: -ref: %w", err)
	}
	epoch := int64(0)
	if *created != "" {
		var err error
		if epoch, err = strconv.ParseInt(*created, 10, 64); err != nil {
			return fmt.Errorf("build: -created %q: %w", *created, err)
		}
	}
	spec := Spec{
		Binary:  *binary,
		Name:    *imgName,
		Ref:     *ref,
		User:    *user,
		Args:    cmdArgs,
		Labels:  map[string]string{},
		Created: time.Unix(epoch, 0).UTC(),
		License: *license,
	}
	if spec.Name == "" {
		spec.Name = filepath.Base(*binary)
	}
	spec.Labels["org.opencontainers.image.created"] = spec.Created.Format(time.RFC3339)
	spec.Labels["org.opencontainers.image.title"] = spec.Name
	for _, l := range labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return fmt.Errorf("build: -label %q: want key=value", l)
		}
		spec.Labels[k] = v
	}
	img, err := Build(spec)
	if err != nil {
		return err
	}
	if err := WriteArchive(img, spec.Ref, *out, spec.Created); err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s %s %s\n", *out, spec.Ref, d)
	return nil
}

func cmdInspect(args []string) error {
	if len(args) != 1 {
		return errors.New("inspect: want one archive")
	}
	img, ref, done, err := ReadArchive(args[0])
	if err != nil {
		return err
	}
	defer done()
	d, err := img.Digest()
	if err != nil {
		return err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(cfg.Config.Labels))
	for k := range cfg.Config.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	labels := make([]string, 0, len(keys))
	for _, k := range keys {
		labels = append(labels, k+"="+cfg.Config.Labels[k])
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"ref":        ref,
		"digest":     d.String(),
		"platform":   cfg.OS + "/" + cfg.Architecture,
		"user":       cfg.Config.User,
		"entrypoint": cfg.Config.Entrypoint,
		"labels":     labels,
	})
}

func cmdPush(args []string) error {
	if len(args) < 1 || len(args) > 2 {
		return errors.New("push: want ARCHIVE [REF]")
	}
	img, ref, done, err := ReadArchive(args[0])
	if err != nil {
		return err
	}
	defer done()
	if len(args) == 2 {
		ref = args[1]
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		return err
	}
	if err := remote.Write(r, img, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s@%s\n", r.Context(), d)
	return nil
}
