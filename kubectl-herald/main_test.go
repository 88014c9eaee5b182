package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	dynamicfake "k8s.io/client-go/dynamic/fake"

	"github.com/heraldlb/herald/internal/migrate/cluster"
)

const testdata = "../internal/migrate/testdata/"

// fakeCluster serves one MetalLB pool and L2Advertisement.
func fakeCluster(kubeconfig, _ string) (dynamic.Interface, error) {
	if kubeconfig == "missing" {
		return nil, errors.New("kubeconfig: no such file")
	}
	listKinds := map[schema.GroupVersionResource]string{{Version: "v1", Resource: "configmaps"}: "ConfigMapList"}
	for _, gvr := range cluster.Resources() {
		listKinds[gvr] = "List"
	}
	pool := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
		"metadata": map[string]any{"name": "lan", "namespace": "metallb-system"},
		"spec":     map[string]any{"addresses": []any{"192.0.2.0/24"}},
	}}
	return dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds, pool), nil
}

func TestRun(t *testing.T) {
	stdinDoc, err := os.ReadFile(testdata + "l2.in.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		desc       string
		args       []string
		stdin      string
		wantCode   int
		wantStdout string // a substring; "-" for empty
		wantStderr string // a substring
	}{
		{desc: "no command", args: nil, wantCode: exitUsage, wantStdout: "-", wantStderr: "Commands:"},
		{desc: "help", args: []string{"help"}, wantCode: exitOK, wantStderr: "migrate"},
		{desc: "unknown command", args: []string{"frobnicate"}, wantCode: exitUsage, wantStderr: `unknown command "frobnicate"`},
		{desc: "version", args: []string{"version"}, wantCode: exitOK, wantStdout: "kubectl-herald "},
		{desc: "migrate -h", args: []string{"migrate", "-h"}, wantCode: exitOK, wantStderr: "--dry-run"},
		{desc: "bad flag", args: []string{"migrate", "--nope"}, wantCode: exitUsage, wantStderr: "flag provided but not defined"},
		{desc: "stray argument", args: []string{"migrate", "-f", "-", "extra"}, wantCode: exitUsage, wantStderr: "unexpected arguments"},
		{desc: "a faithful file", args: []string{"migrate", "-f", testdata + "l2.in.yaml"}, wantCode: exitOK, wantStdout: "kind: L2Advertisement", wantStderr: "summary: 4 converted"},
		{desc: "an unfaithful file", args: []string{"migrate", "--filename", testdata + "unsupported.in.yaml"}, wantCode: exitUnfaithful, wantStdout: "kind: BGPPeer", wantStderr: "spec.futureKnob"},
		{desc: "stdin", args: []string{"migrate", "-f", "-", "-o", "yaml"}, stdin: string(stdinDoc), wantCode: exitOK, wantStdout: "name: reserved", wantStderr: "ip-allocated-from-pool"},
		{desc: "no MetalLB object", args: []string{"migrate", "-f", "-"}, stdin: "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n", wantCode: exitOK, wantStdout: "-", wantStderr: "no MetalLB configuration found"},
		{desc: "dry run writes nothing", args: []string{"migrate", "--dry-run", "-f", testdata + "bgp.in.yaml"}, wantCode: exitOK, wantStdout: "-", wantStderr: "7946"},
		{desc: "missing file", args: []string{"migrate", "-f", "nowhere.yaml"}, wantCode: exitUsage, wantStdout: "-", wantStderr: "nowhere.yaml"},
		{desc: "not YAML", args: []string{"migrate", "-f", "-"}, stdin: "a: [b", wantCode: exitUsage, wantStdout: "-", wantStderr: "stdin: document 1"},
		{desc: "from the cluster", args: []string{"migrate", "--kubeconfig", "fake", "-n", "metallb-system"}, wantCode: exitOK, wantStdout: "name: lan", wantStderr: "-> IPAddressPool/lan"},
		{desc: "no cluster", args: []string{"migrate", "--kubeconfig", "missing"}, wantCode: exitUsage, wantStdout: "-", wantStderr: "no such file"},
		{desc: "plan -h", args: []string{"migrate", "plan", "-h"}, wantCode: exitOK, wantStdout: "-", wantStderr: "--migration-address"},
		{desc: "plan from files", args: []string{"migrate", "plan", "-f", testdata + "l2.in.yaml"}, wantCode: exitOK, wantStdout: "kubectl herald migrate cleanup", wantStderr: ""},
		{desc: "plan of an unfaithful conversion", args: []string{"migrate", "plan", "-f", testdata + "unsupported.in.yaml"}, wantCode: exitUnfaithful, wantStdout: "Rollback", wantStderr: "not faithful"},
		{desc: "plan bad address", args: []string{"migrate", "plan", "--migration-address", "tor"}, wantCode: exitUsage, wantStdout: "-", wantStderr: "PEER=ADDRESS"},
		{desc: "cleanup stray argument", args: []string{"migrate", "cleanup", "now"}, wantCode: exitUsage, wantStdout: "-", wantStderr: "unexpected arguments"},
		{desc: "cleanup no cluster", args: []string{"migrate", "cleanup", "--kubeconfig", "missing"}, wantCode: exitUsage, wantStdout: "-", wantStderr: "no such file"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, env{stdin: strings.NewReader(tc.stdin), stdout: &stdout, stderr: &stderr, dynamicClient: fakeCluster})
			if code != tc.wantCode {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tc.wantCode, stderr.String())
			}
			switch {
			case tc.wantStdout == "-" && stdout.Len() > 0:
				t.Errorf("stdout not empty:\n%s", stdout.String())
			case tc.wantStdout != "-" && !strings.Contains(stdout.String(), tc.wantStdout):
				t.Errorf("stdout lacks %q:\n%s", tc.wantStdout, stdout.String())
			}
			if !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Errorf("stderr lacks %q:\n%s", tc.wantStderr, stderr.String())
			}
		})
	}
}

// TestOutputDir checks -o: one file per object, a directory as input, and
// nothing written with --dry-run.
func TestOutputDir(t *testing.T) {
	for _, tc := range []struct {
		desc      string
		dryRun    bool
		wantFiles []string
	}{
		{desc: "writes one file per object", wantFiles: []string{"ipaddresspool-lan.yaml", "ipaddresspool-reserved.yaml", "l2advertisement-lan.yaml", "l2advertisement-reserved.yaml"}},
		{desc: "dry run writes nothing", dryRun: true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			in, out := t.TempDir(), filepath.Join(t.TempDir(), "herald")
			data, err := os.ReadFile(testdata + "l2.in.yaml")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(in, "metallb.yaml"), data, 0o644); err != nil {
				t.Fatal(err)
			}
			args := []string{"migrate", "-f", in, "-o", out}
			if tc.dryRun {
				args = append(args, "--dry-run")
			}
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), args, env{stdout: &stdout, stderr: &stderr, dynamicClient: fakeCluster}); code != exitOK {
				t.Fatalf("exit code %d; stderr:\n%s", code, stderr.String())
			}
			entries, _ := os.ReadDir(out)
			var got []string
			for _, e := range entries {
				got = append(got, e.Name())
			}
			if strings.Join(got, ",") != strings.Join(tc.wantFiles, ",") {
				t.Errorf("files %v, want %v", got, tc.wantFiles)
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout not empty with -o:\n%s", stdout.String())
			}
		})
	}
}
