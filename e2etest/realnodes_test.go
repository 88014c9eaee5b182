package e2etest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/heraldlb/herald/e2etest/testbed"
)

// The install tests on real nodes run what a user installs: the images that
// `make images` builds, imported into each node's containerd under the names
// the manifest uses, and config/manifests/herald.yaml applied with kubectl.
// They need the real-nodes bed (kubelet, containerd), which takes a long
// first build, so they run only with HERALD_REAL_NODES=1
// (`make -C e2etest test-real-nodes`).

func requireRealNodes(t *testing.T) {
	t.Helper()
	if os.Getenv("HERALD_REAL_NODES") == "" {
		t.Skip("real-nodes install test: set HERALD_REAL_NODES=1 (make -C e2etest test-real-nodes builds the kubelet and installs containerd first)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

// manifestImages returns the images and pull policies of the controller
// Deployment and the speaker DaemonSet of an all-in-one manifest.
func manifestImages(t *testing.T, path string) (controller, speaker string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range decodeObjects(t, data) {
		var spec corev1.PodSpec
		raw, _ := yaml.Marshal(o.Object)
		switch o.GetKind() {
		case "Deployment":
			var d appsv1.Deployment
			if err := yaml.Unmarshal(raw, &d); err != nil {
				t.Fatal(err)
			}
			spec = d.Spec.Template.Spec
		case "DaemonSet":
			var d appsv1.DaemonSet
			if err := yaml.Unmarshal(raw, &d); err != nil {
				t.Fatal(err)
			}
			spec = d.Spec.Template.Spec
		default:
			continue
		}
		for _, c := range spec.Containers {
			if c.ImagePullPolicy == corev1.PullAlways || c.ImagePullPolicy == "" && strings.HasSuffix(c.Image, ":latest") {
				t.Errorf("%s %s: container %s pulls its image always; a cluster without a registry cannot start it", o.GetKind(), o.GetName(), c.Name)
			}
			switch o.GetName() {
			case "herald-controller":
				controller = c.Image
			case "herald-speaker":
				speaker = c.Image
			}
		}
	}
	if controller == "" || speaker == "" {
		t.Fatalf("%s: no herald-controller Deployment or herald-speaker DaemonSet image", path)
	}
	return controller, speaker
}

// buildImages runs `make images` with the registry and tag of ref, into dir.
func buildImages(t *testing.T, root, ref, dir string) []string {
	t.Helper()
	i := strings.LastIndex(ref, ":")
	j := strings.LastIndex(ref, "/")
	if i < 0 || j < 0 || i < j {
		t.Fatalf("image %q has no registry/name:tag form", ref)
	}
	registry, tag := ref[:j], ref[i+1:]
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	begin := time.Now()
	cmd := exec.CommandContext(ctx, "make", "-C", root, "images", "IMAGE_REGISTRY="+registry, "IMAGE_TAG="+tag, "IMAGES_DIR="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make images: %v\n%s", err, out)
	}
	t.Logf("make images (registry %s, tag %s) in %v", registry, tag, time.Since(begin).Round(time.Second))
	return []string{filepath.Join(dir, "herald-controller.tar"), filepath.Join(dir, "herald-speaker.tar")}
}

// kubectlApply runs `kubectl apply --server-side` as admin; without kubectl
// on the PATH it does the same server-side apply through the API.
func kubectlApply(t *testing.T, bed *testbed.Bed, files ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if k, err := exec.LookPath("kubectl"); err == nil {
		for _, f := range files {
			cmd := exec.CommandContext(ctx, k, "--kubeconfig", bed.AdminKubeconfig, "apply", "--server-side", "-f", f)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("kubectl apply --server-side -f %s: %v\n%s", f, err, out)
			}
			t.Logf("kubectl apply --server-side -f %s:\n%s", f, bytes.TrimSpace(out))
		}
		return
	}
	t.Logf("no kubectl on PATH: server-side apply through the API")
	if _, err := bed.ApplyFiles(ctx, files...); err != nil {
		t.Fatal(err)
	}
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func(ctx context.Context) (bool, string)) time.Duration {
	t.Helper()
	begin := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	last := ""
	for {
		ok, status := cond(ctx)
		if ok {
			return time.Since(begin)
		}
		last = status
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not within %v; last: %s", what, timeout, last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// podsStatus summarizes the pods of a namespace for failure messages.
func podsStatus(ctx context.Context, bed *testbed.Bed, ns string) string {
	pods, err := bed.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	var s []string
	for _, p := range pods.Items {
		st := string(p.Status.Phase)
		for _, cs := range p.Status.ContainerStatuses {
			switch {
			case cs.State.Waiting != nil:
				st += fmt.Sprintf(" %s:%s(%s)", cs.Name, cs.State.Waiting.Reason, cs.State.Waiting.Message)
			case cs.State.Terminated != nil:
				st += fmt.Sprintf(" %s:terminated(%s %d)", cs.Name, cs.State.Terminated.Reason, cs.State.Terminated.ExitCode)
			default:
				st += fmt.Sprintf(" %s:ready=%v restarts=%d", cs.Name, cs.Ready, cs.RestartCount)
			}
		}
		s = append(s, fmt.Sprintf("%s on %s: %s", p.Name, p.Spec.NodeName, st))
	}
	return strings.Join(s, "; ")
}

// TestRealNodesInstallManifest installs Herald from the all-in-one manifest on
// real kubelets, from the images `make images` builds, and runs the L2
// example on it: both controller replicas and every speaker become Ready, the
// example Service gets its IP, and the client on the L2 segment reaches the
// web pods through it.
func TestRealNodesInstallManifest(t *testing.T) {
	requireRealNodes(t)
	root := repoRoot(t)
	manifest := filepath.Join(root, "config", "manifests", "herald.yaml")
	installOnRealNodes(t, "kubectl apply --server-side -f config/manifests/herald.yaml", func(bed *testbed.Bed) {
		kubectlApply(t, bed, manifest)
	})
}

// TestRealNodesInstallHelm is the same with `helm install` of the chart's
// defaults.
func TestRealNodesInstallHelm(t *testing.T) {
	requireRealNodes(t)
	root := repoRoot(t)
	installOnRealNodes(t, "helm install herald charts/herald", func(bed *testbed.Bed) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, filepath.Join(root, "hack", "tool.sh"), "helm").Output()
		if err != nil {
			t.Fatalf("hack/tool.sh helm: %v", err)
		}
		helm := strings.TrimSpace(string(out))
		// As docs/installation.md says: the chart does not own the
		// namespace, which must allow the speaker's host network and
		// capabilities.
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testbed.HeraldNamespace,
			Labels: map[string]string{"pod-security.kubernetes.io/enforce": "privileged"}}}
		if _, err := bed.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		cmd := exec.CommandContext(ctx, helm, "install", "herald", filepath.Join(root, "charts", "herald"),
			"--namespace", testbed.HeraldNamespace, "--kubeconfig", bed.AdminKubeconfig)
		cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("helm install: %v\n%s", err, out)
		}
	})
}

// installOnRealNodes builds the images the manifest names, brings up a
// real-nodes bed with them imported, runs install, and checks the result.
func installOnRealNodes(t *testing.T, how string, install func(bed *testbed.Bed)) {
	root := repoRoot(t)
	manifest := filepath.Join(root, "config", "manifests", "herald.yaml")
	ctrlRef, spkRef := manifestImages(t, manifest)
	images := buildImages(t, root, ctrlRef, t.TempDir())
	if s := strings.Replace(ctrlRef, "herald-controller", "herald-speaker", 1); s != spkRef {
		t.Fatalf("the manifest's images differ in registry or tag: %s, %s", ctrlRef, spkRef)
	}

	const nodes = 2
	before := map[string]string{}
	for _, k := range []string{"vm.overcommit_memory", "kernel.panic", "kernel.panic_on_oops"} {
		b, _ := os.ReadFile("/proc/sys/" + strings.ReplaceAll(k, ".", "/"))
		before[k] = strings.TrimSpace(string(b))
	}
	bed := testbed.Start(t, testbed.Options{Nodes: nodes, RealNodes: true, Images: images, NoCRDs: true})
	prefix := bed.Prefix
	t.Logf("figure: real-nodes bed (%d kubelets Ready) up in %v", nodes, bed.StartDuration.Round(time.Millisecond))

	begin := time.Now()
	install(bed)
	ns := testbed.HeraldNamespace
	d := waitUntil(t, 5*time.Minute, "herald-controller 2/2 Ready and herald-speaker Ready on every node", func(ctx context.Context) (bool, string) {
		dep, err := bed.Client.AppsV1().Deployments(ns).Get(ctx, "herald-controller", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		ds, err := bed.Client.AppsV1().DaemonSets(ns).Get(ctx, "herald-speaker", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		ok := dep.Status.ReadyReplicas == 2 && dep.Status.UpdatedReplicas == 2 &&
			ds.Status.DesiredNumberScheduled == nodes && ds.Status.NumberReady == nodes
		return ok, fmt.Sprintf("controller ready %d/2, speaker ready %d/%d; pods: %s",
			dep.Status.ReadyReplicas, ds.Status.NumberReady, ds.Status.DesiredNumberScheduled, podsStatus(ctx, bed, ns))
	})
	t.Logf("figure: %s -> controller 2/2 and speaker %d/%d Ready in %v", how, nodes, nodes, d.Round(time.Millisecond))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pods, err := bed.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		for _, cs := range p.Status.ContainerStatuses {
			if cs.RestartCount > 0 {
				t.Errorf("pod %s container %s restarted %d times", p.Name, cs.Name, cs.RestartCount)
			}
			if cs.Image != ctrlRef && cs.Image != spkRef {
				t.Errorf("pod %s runs image %s, not the one make images built", p.Name, cs.Image)
			}
		}
		// The metrics endpoint the manifest's Services expose (port 7472):
		// speakers on the node's address (host network), controllers on the
		// pod's.
		node := bed.Nodes[0]
		for _, n := range bed.Nodes {
			if n.Name == p.Spec.NodeName {
				node = n
			}
		}
		url := fmt.Sprintf("http://%s/metrics", testbed.HostPort(mustAddr(t, p.Status.PodIP), 7472))
		resp, err := node.HTTPClient(5 * time.Second).Get(url)
		if err != nil {
			t.Errorf("pod %s: metrics: %v", p.Name, err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("herald_")) {
			t.Errorf("pod %s: GET %s: %d, herald metrics: %v", p.Name, url, resp.StatusCode, bytes.Contains(body, []byte("herald_")))
		}
	}

	// The L2 example, as it is in examples/l2.
	begin = time.Now()
	kubectlApply(t, bed, filepath.Join(root, "examples", "l2", "herald.yaml"), filepath.Join(root, "examples", "l2", "service.yaml"))
	const lbIP = "198.18.0.200"
	waitUntil(t, 3*time.Minute, "example Service web with ingress "+lbIP+" and 2 web pods Ready", func(ctx context.Context) (bool, string) {
		svc, err := bed.Client.CoreV1().Services("herald-example-l2").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		dep, err := bed.Client.AppsV1().Deployments("herald-example-l2").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		var ips []string
		for _, in := range svc.Status.LoadBalancer.Ingress {
			ips = append(ips, in.IP)
		}
		ok := len(ips) == 1 && ips[0] == lbIP && dep.Status.ReadyReplicas == 2
		return ok, fmt.Sprintf("ingress %v, web ready %d/2; pods: %s", ips, dep.Status.ReadyReplicas, podsStatus(ctx, bed, "herald-example-l2"))
	})
	var reply testbed.Reply
	dReach := waitUntil(t, time.Minute, "the L2 client reaches web through "+lbIP, func(ctx context.Context) (bool, string) {
		r, err := bed.ClientL2.Get(ctx, lbIP+":80")
		if err != nil {
			return false, err.Error()
		}
		reply = r
		return strings.HasPrefix(r.Pod, "web-"), "answered by " + r.Pod
	})
	t.Logf("figure: L2 example applied -> client reaches %s (answered by pod %s) in %v (reachable %v after the IP was set)",
		lbIP, reply.Pod, time.Since(begin).Round(time.Millisecond), dReach.Round(time.Millisecond))
	_ = begin

	// Teardown here rather than in Cleanup, to check what it leaves.
	if err := bed.Close(); err != nil {
		t.Fatalf("teardown: %v", err)
	}
	for k, v := range before {
		b, _ := os.ReadFile("/proc/sys/" + strings.ReplaceAll(k, ".", "/"))
		if got := strings.TrimSpace(string(b)); got != v {
			t.Errorf("sysctl %s is %s after teardown, was %s", k, got, v)
		}
	}
	if left, _ := filepath.Glob("/sys/fs/cgroup/*/" + prefix + "-*"); len(left) > 0 {
		t.Errorf("cgroups left after teardown: %v", left)
	}
}

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatalf("address %q: %v", s, err)
	}
	return a
}
