package e2etest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/heraldlb/herald/e2etest/testbed"
)

// TestRealNodesInstallHelm installs the chart with `helm install` on real
// kubelets twice in one cluster, with a clean uninstall between: with the
// chart's defaults, then with testdata/helm-values-custom.yaml (a
// loadBalancerClass, tolerations for a tainted node, other resources, the
// ServiceMonitor off). Each time: the same checks as the manifest install,
// the L2 and BGP examples, and `helm uninstall` leaving nothing behind.
func TestRealNodesInstallHelm(t *testing.T) {
	requireRealNodes(t)
	root := repoRoot(t)
	values := filepath.Join(root, "e2etest", "testdata", "helm-values-custom.yaml")
	defObjs := decodeObjects(t, renderChart(t))
	custObjs := decodeObjects(t, renderChart(t, "-f", values))
	ctrlRef, spkRef := manifestImages(t, defObjs)
	images := buildImages(t, root, ctrlRef)
	helm := helmBinary(t)

	rb := startRealBed(t, images)
	// With the Prometheus Operator's CRDs present, "ServiceMonitor off"
	// means something: no ServiceMonitor is created.
	applyAll(t, rb.bed, "monitoring CRDs", []byte(monitoringCRDs))
	before := rb.nodeNetState()

	// The chart's defaults.
	rb.helmInstall(helm)
	rb.waitHerald("helm install (defaults)", realNodesCount)
	rb.checkPods(defObjs, ctrlRef, spkRef)
	rb.checkRBAC(defObjs)
	rb.checkNoServiceMonitor()
	l2 := rb.l2Example(nil)
	bgp := rb.bgpExample(nil)
	rb.uninstall("helm uninstall (defaults)", func() { rb.helmUninstall(helm) }, l2, bgp, before)
	rb.deleteExamples()

	// A non-default values file. node2 is tainted: only the values'
	// tolerations let the speaker (and the controller) run there.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	taint := corev1.Taint{Key: "example.com/dedicated", Value: "edge", Effect: corev1.TaintEffectNoSchedule}
	n2, err := rb.bed.Client.CoreV1().Nodes().Get(ctx, rb.bed.Nodes[1].Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n2.Spec.Taints = append(n2.Spec.Taints, taint)
	if _, err := rb.bed.Client.CoreV1().Nodes().Update(ctx, n2, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	const class = "example.com/herald"
	checkRenderedValues(t, custObjs, class, taint)
	rb.helmInstall(helm, "-f", values)
	rb.waitHerald("helm install -f testdata/helm-values-custom.yaml (node2 tainted)", realNodesCount)
	rb.checkPods(custObjs, ctrlRef, spkRef)
	rb.checkRBAC(custObjs)
	rb.checkNoServiceMonitor()
	withClass := func(u *unstructured.Unstructured) {
		if u.GetKind() == "Service" {
			if err := unstructured.SetNestedField(u.Object, class, "spec", "loadBalancerClass"); err != nil {
				t.Fatal(err)
			}
		}
	}
	l2 = rb.l2Example(withClass)
	bgp = rb.bgpExample(withClass)
	// A Service without the class is not Herald's.
	other := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "herald-example-l2", Name: "no-class"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Port: 80}}},
	}
	if _, err := rb.bed.Client.CoreV1().Services(other.Namespace).Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second)
	if svc, err := rb.bed.Client.CoreV1().Services(other.Namespace).Get(ctx, other.Name, metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	} else if ips := ingressIPs(svc); len(ips) > 0 || len(svc.Annotations) > 0 {
		t.Errorf("with lbClass %s, Service %s/%s without a class got ingress %v, annotations %v", class, other.Namespace, other.Name, ips, svc.Annotations)
	}
	pods, err := rb.bed.Client.CoreV1().Pods(testbed.HeraldNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=speaker"})
	if err != nil {
		t.Fatal(err)
	}
	onTainted := false
	for _, p := range pods.Items {
		onTainted = onTainted || p.Spec.NodeName == n2.Name
	}
	if !onTainted {
		t.Errorf("no speaker on the tainted node %s: the values' tolerations were not applied", n2.Name)
	}
	rb.uninstall("helm uninstall (custom values)", func() { rb.helmUninstall(helm) }, l2, bgp, before)
	rb.close()
}

// checkRenderedValues checks that the chart rendered the custom values: the
// class flag, the tolerations and the resources (checkPods then compares
// the running pods with the rendering).
func checkRenderedValues(t *testing.T, objs []*unstructured.Unstructured, class string, taint corev1.Taint) {
	t.Helper()
	c, s := heraldWorkloads(t, objs)
	for name, tc := range map[string]struct {
		tpl   *corev1.PodTemplateSpec
		limit string
	}{"controller": {c, "256Mi"}, "speaker": {s, "300Mi"}} {
		ctr := tc.tpl.Spec.Containers[0]
		if !slices.Contains(ctr.Args, "--lb-class="+class) {
			t.Errorf("%s: args %v lack --lb-class=%s", name, ctr.Args, class)
		}
		if got := ctr.Resources.Limits[corev1.ResourceMemory]; got.Cmp(resource.MustParse(tc.limit)) != 0 {
			t.Errorf("%s: memory limit %s, the values say %s", name, got.String(), tc.limit)
		}
		tolerates := false
		for _, tol := range tc.tpl.Spec.Tolerations {
			tolerates = tolerates || tol.Key == taint.Key && tol.Value == taint.Value && tol.Effect == taint.Effect
		}
		if !tolerates {
			t.Errorf("%s: tolerations %v do not tolerate %v", name, tc.tpl.Spec.Tolerations, taint)
		}
	}
}

func helmBinary(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(repoRoot(t), "hack", "tool.sh"), "helm").Output()
	if err != nil {
		t.Fatalf("hack/tool.sh helm: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func (rb *realBed) helm(helm string, args ...string) {
	t := rb.t
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args = append(args, "--namespace", testbed.HeraldNamespace, "--kubeconfig", rb.bed.AdminKubeconfig)
	cmd := exec.CommandContext(ctx, helm, args...)
	dir := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+dir+"/cache", "HELM_CONFIG_HOME="+dir+"/config", "HELM_DATA_HOME="+dir+"/data")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("helm %s: ok", strings.Join(args[:min(len(args), 4)], " "))
}

// helmInstall does what docs/installation.md says: the chart does not own
// the namespace, which must allow the speaker's host network and
// capabilities.
func (rb *realBed) helmInstall(helm string, args ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testbed.HeraldNamespace,
		Labels: map[string]string{"pod-security.kubernetes.io/enforce": "privileged"}}}
	if _, err := rb.bed.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		rb.t.Fatal(err)
	}
	rb.helm(helm, append([]string{"install", "herald", filepath.Join(rb.root, "charts", "herald")}, args...)...)
}

// helmUninstall is the uninstall docs/installation.md describes for Helm:
// `helm uninstall`, then the CRDs (Helm never deletes them) and the
// namespace.
func (rb *realBed) helmUninstall(helm string) {
	t, bed := rb.t, rb.bed
	rb.helm(helm, "uninstall", "herald", "--wait")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	crds, err := bed.Dynamic.Resource(crdGVR).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range crds.Items {
		if strings.HasSuffix(c.GetName(), ".herald.io") {
			if err := bed.Dynamic.Resource(crdGVR).Delete(ctx, c.GetName(), metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := bed.Client.CoreV1().Namespaces().Delete(ctx, testbed.HeraldNamespace, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 3*time.Minute, "Herald's CRDs and namespace gone", func(ctx context.Context) (bool, string) {
		_, err := bed.Client.CoreV1().Namespaces().Get(ctx, testbed.HeraldNamespace, metav1.GetOptions{})
		crds, lerr := bed.Dynamic.Resource(crdGVR).List(ctx, metav1.ListOptions{})
		if lerr != nil {
			return false, lerr.Error()
		}
		left := 0
		for _, c := range crds.Items {
			if strings.HasSuffix(c.GetName(), ".herald.io") {
				left++
			}
		}
		return apierrors.IsNotFound(err) && left == 0, fmt.Sprintf("namespace: %v; %d CRDs left", err, left)
	})
}

var serviceMonitorGVR = schema.GroupVersionResource{Group: "monitoring.coreos.com", Version: "v1", Resource: "servicemonitors"}

func (rb *realBed) checkNoServiceMonitor() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := rb.bed.Dynamic.Resource(serviceMonitorGVR).Namespace("").List(ctx, metav1.ListOptions{})
	if err != nil {
		rb.t.Fatal(err)
	}
	if len(l.Items) > 0 {
		rb.t.Errorf("the install created %d ServiceMonitors; the values turn them off", len(l.Items))
	}
}

// deleteExamples removes the examples' namespaces (their Deployments and
// Services), for the next install to start from a clean cluster.
func (rb *realBed) deleteExamples() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, ns := range []string{"herald-example-l2", "herald-example-bgp"} {
		if err := rb.bed.Client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			rb.t.Fatal(err)
		}
	}
	waitUntil(rb.t, 3*time.Minute, "the examples' namespaces gone", func(ctx context.Context) (bool, string) {
		for _, ns := range []string{"herald-example-l2", "herald-example-bgp"} {
			if _, err := rb.bed.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return false, ns + ": " + fmt.Sprint(err)
			}
		}
		return true, ""
	})
}
