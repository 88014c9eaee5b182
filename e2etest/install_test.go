package e2etest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/heraldlb/herald/e2etest/testbed"
)

// The install tests check what a user installs: config/manifests/*.yaml and
// the Helm chart. The chart's defaults must render the objects of the
// all-in-one manifest; both must be accepted by a real API server.

// helmLabels are the labels only the chart adds; the comparison ignores them.
var helmLabels = []string{"helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/instance", "app.kubernetes.io/version"}

func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := testbed.FindRepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// renderChart runs `helm template` on charts/herald with the Helm built from
// hack/tools/helm (hack/tool.sh builds it once into the cache).
func renderChart(t testing.TB, args ...string) []byte {
	t.Helper()
	root := repoRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(root, "hack", "tool.sh"), "helm").Output()
	if err != nil {
		t.Fatalf("hack/tool.sh helm: %v", err)
	}
	helm := strings.TrimSpace(string(out))
	args = append([]string{"template", "herald", filepath.Join(root, "charts", "herald"), "--namespace", testbed.HeraldNamespace, "--include-crds"}, args...)
	cmd := exec.CommandContext(ctx, helm, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return b
}

func decodeObjects(t testing.TB, data []byte) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for {
		var obj map[string]any
		if err := dec.Decode(&obj); err != nil {
			if errors.Is(err, io.EOF) {
				return out
			}
			t.Fatalf("decode: %v", err)
		}
		if len(obj) > 0 {
			out = append(out, &unstructured.Unstructured{Object: obj})
		}
	}
}

func objectID(u *unstructured.Unstructured) string {
	return u.GetKind() + " " + objKeyOf(u)
}

func objKeyOf(u *unstructured.Unstructured) string {
	if u.GetNamespace() != "" {
		return u.GetNamespace() + "/" + u.GetName()
	}
	return u.GetName()
}

// byID indexes objects, without the Namespace (Helm does not create it) and
// without the chart's own labels.
func byID(t testing.TB, objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
	t.Helper()
	m := map[string]*unstructured.Unstructured{}
	for _, u := range objs {
		if u.GetKind() == "Namespace" {
			continue
		}
		if l := u.GetLabels(); l != nil {
			for _, k := range helmLabels {
				delete(l, k)
			}
			u.SetLabels(l)
			if len(l) == 0 {
				unstructured.RemoveNestedField(u.Object, "metadata", "labels")
			}
		}
		id := objectID(u)
		if _, dup := m[id]; dup {
			t.Errorf("%s appears twice", id)
		}
		m[id] = u
	}
	return m
}

func compareObjects(t *testing.T, wantName string, want []*unstructured.Unstructured, gotName string, got []*unstructured.Unstructured) {
	t.Helper()
	w, g := byID(t, want), byID(t, got)
	var ids []string
	for id := range w {
		ids = append(ids, id)
	}
	for id := range g {
		if _, ok := w[id]; !ok {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		wo, gok := w[id], g[id]
		switch {
		case wo == nil:
			t.Errorf("%s: only in %s", id, gotName)
		case gok == nil:
			t.Errorf("%s: only in %s", id, wantName)
		case !reflect.DeepEqual(wo.Object, gok.Object):
			wy, _ := yaml.Marshal(wo.Object)
			gy, _ := yaml.Marshal(gok.Object)
			t.Errorf("%s differs (-%s +%s):\n%s", id, wantName, gotName, lineDiff(string(wy), string(gy)))
		}
	}
	t.Logf("%d objects compared", len(ids))
}

// lineDiff is a small LCS line diff, enough for a test failure.
func lineDiff(a, b string) string {
	x, y := strings.Split(a, "\n"), strings.Split(b, "\n")
	lcs := make([][]int, len(x)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out strings.Builder
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		switch {
		case i < len(x) && j < len(y) && x[i] == y[j]:
			i, j = i+1, j+1
		case j < len(y) && (i == len(x) || lcs[i][j+1] >= lcs[i+1][j]):
			fmt.Fprintf(&out, "+ %s\n", y[j])
			j++
		default:
			fmt.Fprintf(&out, "- %s\n", x[i])
			i++
		}
	}
	return out.String()
}

func readManifest(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "config", "manifests", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestHelmChartMatchesManifests renders the chart with its defaults (and with
// the Prometheus objects on) and compares every object with the all-in-one
// manifests. It needs no root.
func TestHelmChartMatchesManifests(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		compareObjects(t, "herald.yaml", decodeObjects(t, readManifest(t, "herald.yaml")),
			"chart", decodeObjects(t, renderChart(t)))
	})
	t.Run("prometheus", func(t *testing.T) {
		compareObjects(t, "herald-prometheus.yaml", decodeObjects(t, readManifest(t, "herald-prometheus.yaml")),
			"chart", decodeObjects(t, renderChart(t, "--set", "prometheus.serviceMonitor.enabled=true,prometheus.rules.enabled=true")))
	})
	t.Run("networkpolicy", func(t *testing.T) {
		compareObjects(t, "herald-networkpolicy.yaml", decodeObjects(t, readManifest(t, "herald-networkpolicy.yaml")),
			"chart", decodeObjects(t, renderChart(t, "--set", "networkPolicy.enabled=true")))
	})
}

// TestNetworkPolicyFitsController checks the NetworkPolicies against the
// controller they guard: the controller's policy selects the Deployment's
// pods, admits every port the Deployment declares (the probes and the
// metrics scrape use them), and the namespace-wide one denies the rest.
func TestNetworkPolicyFitsController(t *testing.T) {
	objs := decodeObjects(t, readManifest(t, "herald-networkpolicy.yaml"))
	var deploy, policy, deny *unstructured.Unstructured
	for _, u := range objs {
		switch {
		case u.GetKind() == "Deployment" && u.GetName() == "herald-controller":
			deploy = u
		case u.GetKind() == "NetworkPolicy" && u.GetName() == "herald-controller":
			policy = u
		case u.GetKind() == "NetworkPolicy" && u.GetName() == "herald-default-deny":
			deny = u
		}
	}
	if deploy == nil || policy == nil || deny == nil {
		t.Fatalf("herald-networkpolicy.yaml: Deployment %v, NetworkPolicy herald-controller %v, herald-default-deny %v", deploy != nil, policy != nil, deny != nil)
	}
	if herald := readManifest(t, "herald.yaml"); bytes.Contains(herald, []byte("kind: NetworkPolicy")) {
		t.Error("herald.yaml (the default install) has NetworkPolicies; they must be opt-in")
	}
	if sel, _, _ := unstructured.NestedMap(deny.Object, "spec", "podSelector"); len(sel) != 0 {
		t.Errorf("herald-default-deny selects %v, want every pod", sel)
	}
	if rules, _, _ := unstructured.NestedSlice(deny.Object, "spec", "ingress"); len(rules) != 0 {
		t.Errorf("herald-default-deny admits %v", rules)
	}
	podLabels, _, _ := unstructured.NestedStringMap(deploy.Object, "spec", "template", "metadata", "labels")
	sel, _, _ := unstructured.NestedStringMap(policy.Object, "spec", "podSelector", "matchLabels")
	for k, v := range sel {
		if podLabels[k] != v {
			t.Errorf("the controller's policy selects %s=%s; the controller's pods have %v", k, v, podLabels)
		}
	}
	if len(sel) == 0 {
		t.Error("the controller's policy selects every pod")
	}
	admitted := map[string]bool{}
	ingress, _, _ := unstructured.NestedSlice(policy.Object, "spec", "ingress")
	for _, r := range ingress {
		ports, _, _ := unstructured.NestedSlice(r.(map[string]any), "ports")
		for _, p := range ports {
			admitted[fmt.Sprint(p.(map[string]any)["port"])] = true
		}
	}
	containers, _, _ := unstructured.NestedSlice(deploy.Object, "spec", "template", "spec", "containers")
	for _, c := range containers {
		ports, _, _ := unstructured.NestedSlice(c.(map[string]any), "ports")
		for _, p := range ports {
			name := fmt.Sprint(p.(map[string]any)["name"])
			if !admitted[name] {
				t.Errorf("container port %s of the controller is not admitted by its NetworkPolicy (admitted: %v)", name, admitted)
			}
		}
	}
	egress, _, _ := unstructured.NestedSlice(policy.Object, "spec", "egress")
	if len(egress) == 0 {
		t.Error("the controller's policy allows no egress: it could not reach the API server")
	}
}

// monitoringCRDs stand in for the Prometheus Operator's CRDs, so that the
// Prometheus variants can be applied: only the kinds, not their schemas.
const monitoringCRDs = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: servicemonitors.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: ServiceMonitor, plural: servicemonitors, singular: servicemonitor, listKind: ServiceMonitorList}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: prometheusrules.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: PrometheusRule, plural: prometheusrules, singular: prometheusrule, listKind: PrometheusRuleList}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
`

// applyAll server-side-applies the stream, retrying objects whose kind is
// not served yet (a CRD of the same stream still being established).
func applyAll(t *testing.T, bed *testbed.Bed, what string, data []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	objs := decodeObjects(t, data)
	for _, u := range objs {
		for {
			_, err := bed.Apply(ctx, u)
			if err == nil {
				break
			}
			if !strings.Contains(err.Error(), "no resource for") || ctx.Err() != nil {
				t.Fatalf("%s: %v", what, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	t.Logf("%s: %d objects applied", what, len(objs))
}

// TestInstall applies the all-in-one manifests and the chart's rendering to
// a real API server with server-side apply, twice each (an upgrade in place
// must apply too). The Deployment and DaemonSet do not run (no kubelets);
// the API server's validation and admission of every object is the test.
func TestInstall(t *testing.T) {
	needRoot(t)
	bed := testbed.Start(t, testbed.Options{Nodes: 1, NoKubeProxy: true, NoCRDs: true})
	applyAll(t, bed, "monitoring CRDs", []byte(monitoringCRDs))
	for _, c := range []struct {
		name string
		data func() []byte
	}{
		{"config/manifests/herald.yaml", func() []byte { return readManifest(t, "herald.yaml") }},
		{"config/manifests/herald-prometheus.yaml", func() []byte { return readManifest(t, "herald-prometheus.yaml") }},
		{"helm template (defaults)", func() []byte { return renderChart(t) }},
		{"helm template (prometheus, lbClass)", func() []byte {
			return renderChart(t, "--set", "prometheus.serviceMonitor.enabled=true,prometheus.rules.enabled=true,lbClass=herald")
		}},
		{"config/manifests/herald-networkpolicy.yaml", func() []byte { return readManifest(t, "herald-networkpolicy.yaml") }},
		{"helm template (networkPolicy)", func() []byte { return renderChart(t, "--set", "networkPolicy.enabled=true") }},
	} {
		data := c.data()
		applyAll(t, bed, c.name, data)
		applyAll(t, bed, c.name+" (again)", data)
	}
	ctx := context.Background()
	ds, err := bed.Client.AppsV1().DaemonSets(testbed.HeraldNamespace).Get(ctx, "herald-speaker", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ds.Spec.Template.Spec.Containers[0].SecurityContext.Capabilities.Add; len(got) != 1 || got[0] != "NET_RAW" {
		t.Errorf("speaker capabilities = %v, want NET_RAW only", got)
	}
}
