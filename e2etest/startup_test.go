package e2etest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldlb/herald/e2etest/testbed"
)

// TestBedStartTime reports how long a full bed (3 nodes, router, clients,
// cached binaries) takes to come up, and the recorded one-time build cost of
// the Kubernetes binaries. It asserts only a generous bound; the target is
// under 30 s.
func TestBedStartTime(t *testing.T) {
	needRoot(t)
	if b, err := os.ReadFile(filepath.Join(testbed.KubeDir(), "build-seconds")); err == nil {
		t.Logf("one-time build of kube-apiserver and kube-proxy %s: %ss (cold, recorded by hack/build-kube.sh)", testbed.KubeVersion, strings.TrimSpace(string(b)))
	}
	bed := testbed.Start(t, testbed.Options{Nodes: 3, Router: true})
	t.Logf("FIGURE bed start (3 nodes, router, 2 clients, kube-proxy %s): %v", "iptables", bed.StartDuration.Round(time.Millisecond))
	if bed.StartDuration > 90*time.Second {
		t.Errorf("bed start took %v; target is under 30s", bed.StartDuration)
	}
}
