package e2etest

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/heraldlb/herald/e2etest/testbed"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the test bed needs root")
	}
}

// TestKubeVersionPinned checks that the package and the tools module agree on
// the Kubernetes version, so a bump rebuilds the binaries the bed runs.
func TestKubeVersionPinned(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("tools", "kube", "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(b)); got != testbed.KubeVersion {
		t.Fatalf("tools/kube/VERSION is %s, testbed.KubeVersion is %s", got, testbed.KubeVersion)
	}
}

// TestMetalLBVersionPinned checks that the package, the tools module's
// VERSION and the version its go.mod requires agree on MetalLB's version.
func TestMetalLBVersionPinned(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("tools", "metallb", "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(b)); got != testbed.MetalLBVersion {
		t.Fatalf("tools/metallb/VERSION is %s, testbed.MetalLBVersion is %s", got, testbed.MetalLBVersion)
	}
	mod, err := os.ReadFile(filepath.Join("tools", "metallb", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if want := testbed.MetalLBModule + " " + testbed.MetalLBVersion; !strings.Contains(string(mod), want) {
		t.Fatalf("tools/metallb/go.mod does not require %s", want)
	}
}

// TestControlPlane starts a bed with no nodes' kube-proxy and checks the API
// server, the CRDs and that Herald's identities get exactly their RBAC.
func TestControlPlane(t *testing.T) {
	needRoot(t)
	bed := testbed.Start(t, testbed.Options{Nodes: 1, NoKubeProxy: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	v, err := bed.Client.Discovery().ServerVersion()
	if err != nil {
		t.Fatalf("API server does not answer: %v", err)
	}
	if v.GitVersion != testbed.KubeVersion {
		t.Errorf("API server version %s, want %s", v.GitVersion, testbed.KubeVersion)
	}
	t.Logf("API server %s at %s", v.GitVersion, bed.APIServerURL)

	t.Run("CRDsEstablished", func(t *testing.T) {
		names, err := bed.ApplyCRDs(ctx)
		if err != nil {
			t.Fatalf("CRDs: %v", err)
		}
		if len(names) == 0 {
			t.Fatal("config/crd/bases holds no CustomResourceDefinition")
		}
		res, err := bed.Client.Discovery().ServerResourcesForGroupVersion("herald.io/v1beta1")
		if err != nil {
			t.Fatalf("herald.io/v1beta1 not served: %v", err)
		}
		t.Logf("%d CRDs established: %s; served kinds: %d", len(names), strings.Join(names, ", "), len(res.APIResources))
	})

	t.Run("RBAC", func(t *testing.T) {
		ctrl, err := kubernetes.NewForConfig(bed.Controller)
		if err != nil {
			t.Fatal(err)
		}
		spk, err := kubernetes.NewForConfig(bed.Speaker)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ctrl.CoreV1().Services("").List(ctx, metav1.ListOptions{}); err != nil {
			t.Errorf("controller cannot list services: %v", err)
		}
		if _, err := spk.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err != nil {
			t.Errorf("speaker cannot list nodes: %v", err)
		}
		if _, err := spk.CoreV1().Secrets(testbed.HeraldNamespace).List(ctx, metav1.ListOptions{}); err != nil {
			t.Errorf("speaker cannot list secrets in %s: %v", testbed.HeraldNamespace, err)
		}
		// Denials prove the identities are not admin.
		if _, err := spk.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{}); err == nil {
			t.Error("speaker can list secrets outside its namespace")
		}
		if _, err := ctrl.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "intruder"}}, metav1.CreateOptions{}); err == nil {
			t.Error("controller can create nodes")
		}
		for _, kc := range []string{bed.AdminKubeconfig, bed.ControllerKubeconfig, bed.SpeakerKubeconfig} {
			if _, err := os.Stat(kc); err != nil {
				t.Errorf("kubeconfig: %v", err)
			}
		}
	})

	t.Run("Nodes", func(t *testing.T) {
		n, err := bed.Client.CoreV1().Nodes().Get(ctx, "node1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(n.Status.Addresses) == 0 || n.Status.Addresses[0].Address != bed.Nodes[0].IP.String() {
			t.Errorf("node1 addresses %v, want InternalIP %s", n.Status.Addresses, bed.Nodes[0].IP)
		}
	})
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testLogWriter{t}, nil))
}

type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
