package e2etest

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// demoResult is the part of `demo up -json` the test reads.
type demoResult struct {
	Prefix       string   `json:"prefix"`
	RunDir       string   `json:"runDir"`
	L2IP         string   `json:"l2IP"`
	BGPIP        string   `json:"bgpIP"`
	CurlL2       []string `json:"curlL2"`
	CurlBGP      []string `json:"curlBGP"`
	StartSeconds float64  `json:"startSeconds"`
}

// TestDemo runs `make demo`'s program as a user would (a detached bed,
// Herald with the shipped RBAC, an L2 and a BGP Service), runs the curl
// commands it prints from both clients, and tears it down with `demo down`.
func TestDemo(t *testing.T) {
	needRoot(t)
	testDemo(t)
}

// TestDemoRealNodes is `make demo KUBELET=1`: the same, with Herald
// installed from its images and config/manifests/herald.yaml as pods on real
// kubelets.
func TestDemoRealNodes(t *testing.T) {
	requireRealNodes(t)
	testDemo(t, "-real-nodes")
}

func testDemo(t *testing.T, args ...string) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "demo")
	state := filepath.Join(dir, "demo.json")
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/demo").CombinedOutput(); err != nil {
		t.Fatalf("build cmd/demo: %v\n%s", err, out)
	}
	down := func() {
		out, err := exec.Command(bin, "down", "-state", state).CombinedOutput()
		if err != nil {
			t.Errorf("demo down: %v\n%s", err, out)
		}
	}
	t.Cleanup(func() {
		if _, err := os.Stat(state); err == nil {
			down()
		}
	})

	cmd := exec.CommandContext(ctx, bin, append([]string{"up", "-json", "-state", state}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("demo up: %v\n%s", err, tail(stderr.String(), 40))
	}
	var res demoResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("demo up -json: %v\n%s", err, out)
	}
	t.Logf("demo %s up in %.1fs: L2 %s, BGP %s", res.Prefix, res.StartSeconds, res.L2IP, res.BGPIP)

	curl := func(what string, argv []string) {
		t.Helper()
		if len(argv) == 0 {
			t.Errorf("%s: demo printed no command", what)
			return
		}
		out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), `"pod"`) {
			t.Errorf("%s: %s: %v: %s", what, strings.Join(argv, " "), err, out)
			return
		}
		t.Logf("%s: %s -> %s", what, strings.Join(argv, " "), strings.TrimSpace(string(out)))
	}
	curl("L2 client", res.CurlL2)
	if res.BGPIP == "" {
		t.Error("the demo configured no BGP Service")
	} else {
		curl("client behind the router", res.CurlBGP)
	}

	down()
	if _, err := os.Stat(res.RunDir); !os.IsNotExist(err) {
		t.Errorf("run dir %s still exists after demo down (%v)", res.RunDir, err)
	}
	if out, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(out), res.Prefix+"-") {
		t.Errorf("namespaces of %s remain after demo down:\n%s", res.Prefix, out)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("state file %s remains after demo down", state)
	}
}
