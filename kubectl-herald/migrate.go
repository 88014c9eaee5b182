package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/heraldlb/herald/internal/migrate"
	"github.com/heraldlb/herald/internal/migrate/cluster"
)

// fileList is a repeatable -f flag.
type fileList []string

func (f *fileList) String() string     { return strings.Join(*f, ",") }
func (f *fileList) Set(v string) error { *f = append(*f, v); return nil }

// migrateFlags are the flags of "kubectl herald migrate".
type migrateFlags struct {
	files                fileList
	kubeconfig, context  string
	namespace, configMap string
	outputDir            string
	dryRun               bool
}

func runMigrate(ctx context.Context, args []string, e env) int {
	if len(args) > 0 {
		switch args[0] {
		case "plan":
			return runPlan(ctx, args[1:], e)
		case "cleanup":
			return runCleanup(ctx, args[1:], e)
		}
	}
	var f migrateFlags
	fs := flag.NewFlagSet("kubectl herald migrate", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Var(&f.files, "f", "MetalLB objects to convert: a YAML or JSON file, a directory of them, or - for stdin; repeatable. Without -f, read from the cluster")
	fs.Var(&f.files, "filename", "same as -f")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig of the cluster to read (default: $KUBECONFIG or ~/.kube/config)")
	fs.StringVar(&f.context, "context", "", "kubeconfig context (default: the current one)")
	fs.StringVar(&f.namespace, "n", "metallb-system", "MetalLB's namespace in the cluster")
	fs.StringVar(&f.namespace, "namespace", "metallb-system", "same as -n")
	fs.StringVar(&f.configMap, "configmap", "config", "MetalLB's pre-0.13 ConfigMap in the cluster; empty skips it")
	fs.StringVar(&f.outputDir, "o", "", "write one file per Herald object into this directory instead of one YAML stream on stdout (\"yaml\": stdout, as kubectl's -o yaml)")
	fs.StringVar(&f.outputDir, "output-dir", "", "same as -o")
	fs.BoolVar(&f.dryRun, "dry-run", false, "print the report only; write no object")
	fs.Usage = func() {
		e.stderrln(`Usage: kubectl herald migrate [-f FILE|DIR|-]... [--kubeconfig PATH] [-n NAMESPACE] [-o DIR] [--dry-run]
       kubectl herald migrate plan [flags]      print the switch-over steps for this cluster
       kubectl herald migrate cleanup [flags]   remove MetalLB's annotations once Herald serves

Converts MetalLB's configuration (metallb.io v1beta1/v1beta2 custom resources,
or the pre-0.13 ConfigMap) into herald.io/v1beta1 objects, written as YAML on
stdout (or one file per object with -o). A report on stderr lists what was
converted, what has no equivalent in Herald (object and field), and what
behaves differently. MetalLB's objects are only read.

Exit status: 0 when everything was converted faithfully, 1 when something has
no equivalent (the rest is still written), 2 on bad flags or unreadable input.

Flags:`)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args, e, "kubectl herald migrate"); !ok {
		return code
	}
	in, err := f.read(ctx, e)
	if err != nil {
		e.stderrf("kubectl herald migrate: %v\n", err)
		return exitUsage
	}
	res := migrate.Convert(in)
	if !f.dryRun {
		if err := f.write(res, e.stdout); err != nil {
			e.stderrf("kubectl herald migrate: %v\n", err)
			return exitUsage
		}
	}
	if err := res.Report.WriteText(e.stderr); err != nil {
		return exitUsage
	}
	if !res.Report.Faithful() {
		return exitUnfaithful
	}
	return exitOK
}

// read collects the MetalLB objects from the files, or from the cluster.
func (f *migrateFlags) read(ctx context.Context, e env) (*migrate.Input, error) {
	in := &migrate.Input{}
	if len(f.files) == 0 {
		client, err := e.dynamicClient(f.kubeconfig, f.context)
		if err != nil {
			return nil, err
		}
		return in, cluster.Read(ctx, client, f.namespace, f.configMap, in)
	}
	for _, name := range f.files {
		if name == "-" {
			data, err := io.ReadAll(e.stdin)
			if err != nil {
				return nil, fmt.Errorf("stdin: %w", err)
			}
			if err := in.AddYAML("stdin", data); err != nil {
				return nil, err
			}
			continue
		}
		paths, err := expand(name)
		if err != nil {
			return nil, err
		}
		for _, p := range paths {
			data, err := os.ReadFile(p)
			if err != nil {
				return nil, err
			}
			if err := in.AddYAML(p, data); err != nil {
				return nil, err
			}
		}
	}
	return in, nil
}

// expand returns a file, or the YAML and JSON files of a directory (not
// its subdirectories), sorted.
func expand(name string) ([]string, error) {
	st, err := os.Stat(name)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []string{name}, nil
	}
	entries, err := os.ReadDir(name)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, de := range entries {
		switch filepath.Ext(de.Name()) {
		case ".yaml", ".yml", ".json":
			if !de.IsDir() {
				out = append(out, filepath.Join(name, de.Name()))
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// write writes the Herald objects to stdout, or one file each into the
// output directory.
func (f *migrateFlags) write(res *migrate.Result, stdout io.Writer) error {
	if f.outputDir == "" || f.outputDir == "yaml" {
		return res.Output.WriteYAML(stdout)
	}
	files, err := res.Output.Files()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(f.outputDir, 0o755); err != nil {
		return err
	}
	for _, file := range files {
		if err := os.WriteFile(filepath.Join(f.outputDir, file.Name), file.Data, 0o644); err != nil {
			return err
		}
	}
	return nil
}
