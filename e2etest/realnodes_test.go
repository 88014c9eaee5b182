package e2etest

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/heraldlb/herald/e2etest/testbed"
)

// The install tests on real nodes run what a user installs: the images that
// `make images` builds, imported into each node's containerd under the names
// the manifest uses, and config/manifests/herald.yaml applied with kubectl
// (or the chart installed with helm). `make test` runs them: it installs
// containerd, runc and the CNI plugins and builds the kubelet first
// (`make -C e2etest deps-nodes kube-nodes`). HERALD_REAL_NODES=0 skips them;
// a plain `go test` without the kubelet built skips them too, and fails
// instead when HERALD_REAL_NODES=1 asks for them.

func requireRealNodes(t *testing.T) {
	t.Helper()
	asked := false
	switch os.Getenv("HERALD_REAL_NODES") {
	case "0", "false", "no":
		t.Skip("HERALD_REAL_NODES=0: the real-nodes install tests are skipped")
	case "1", "true", "yes":
		asked = true
	}
	needRoot(t)
	if _, err := testbed.KubeBinary("kubelet"); err != nil {
		if !asked {
			t.Skipf("the real-nodes install tests need the kubelet (`make -C e2etest deps-nodes kube-nodes`; `make test` builds it): %v", err)
		}
		t.Fatalf("the real-nodes install tests need the kubelet: run `make -C e2etest deps-nodes kube-nodes` (or HERALD_REAL_NODES=0 to skip them): %v", err)
	}
}

// heraldWorkloads returns the pod templates of the controller Deployment and
// the speaker DaemonSet of a rendered install (manifest or chart).
func heraldWorkloads(t *testing.T, objs []*unstructured.Unstructured) (controller, speaker *corev1.PodTemplateSpec) {
	t.Helper()
	for _, o := range objs {
		raw, _ := yaml.Marshal(o.Object)
		switch {
		case o.GetKind() == "Deployment" && o.GetName() == "herald-controller":
			var d appsv1.Deployment
			if err := yaml.Unmarshal(raw, &d); err != nil {
				t.Fatal(err)
			}
			controller = &d.Spec.Template
		case o.GetKind() == "DaemonSet" && o.GetName() == "herald-speaker":
			var d appsv1.DaemonSet
			if err := yaml.Unmarshal(raw, &d); err != nil {
				t.Fatal(err)
			}
			speaker = &d.Spec.Template
		}
	}
	if controller == nil || speaker == nil {
		t.Fatal("no herald-controller Deployment or herald-speaker DaemonSet")
	}
	return controller, speaker
}

// manifestImages returns the images of the controller Deployment and the
// speaker DaemonSet, and checks that none is pulled always.
func manifestImages(t *testing.T, objs []*unstructured.Unstructured) (controller, speaker string) {
	t.Helper()
	c, s := heraldWorkloads(t, objs)
	for _, tpl := range []*corev1.PodTemplateSpec{c, s} {
		for _, ctr := range tpl.Spec.Containers {
			if ctr.ImagePullPolicy == corev1.PullAlways || ctr.ImagePullPolicy == "" && strings.HasSuffix(ctr.Image, ":latest") {
				t.Errorf("container %s pulls its image always; a cluster without a registry cannot start it", ctr.Name)
			}
		}
	}
	controller, speaker = c.Spec.Containers[0].Image, s.Spec.Containers[0].Image
	if s := strings.Replace(controller, "herald-controller", "herald-speaker", 1); s != speaker {
		t.Fatalf("the images differ in registry or tag: %s, %s", controller, speaker)
	}
	return controller, speaker
}

func readObjects(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return decodeObjects(t, data)
}

// retag replaces the tag of an image reference.
func retag(ref, tag string) string {
	return ref[:strings.LastIndex(ref, ":")+1] + tag
}

// builtImages are the image archives built by this test process, by
// reference, in one directory that TestMain removes: the install tests
// share a build of the same images.
var builtImages struct {
	sync.Mutex
	dir  string
	refs map[string][]string
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtImages.dir != "" {
		_ = os.RemoveAll(builtImages.dir)
	}
	os.Exit(code)
}

// buildImages runs `make images` with the registry and tag of ref (once per
// test process); the binaries are stamped with the tag as their version.
func buildImages(t *testing.T, root, ref string) []string {
	t.Helper()
	builtImages.Lock()
	defer builtImages.Unlock()
	if imgs, ok := builtImages.refs[ref]; ok {
		return imgs
	}
	if builtImages.dir == "" {
		d, err := os.MkdirTemp("", "herald-images-")
		if err != nil {
			t.Fatal(err)
		}
		builtImages.dir, builtImages.refs = d, map[string][]string{}
	}
	dir := filepath.Join(builtImages.dir, fmt.Sprint(len(builtImages.refs)))
	i := strings.LastIndex(ref, ":")
	j := strings.LastIndex(ref, "/")
	if i < 0 || j < 0 || i < j {
		t.Fatalf("image %q has no registry/name:tag form", ref)
	}
	registry, tag := ref[:j], ref[i+1:]
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	begin := time.Now()
	cmd := exec.CommandContext(ctx, "make", "-C", root, "images", "VERSION="+tag, "IMAGE_REGISTRY="+registry, "IMAGE_TAG="+tag, "IMAGES_DIR="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make images: %v\n%s", err, out)
	}
	t.Logf("figure: make images (registry %s, tag %s) in %v", registry, tag, time.Since(begin).Round(time.Second))
	imgs := []string{filepath.Join(dir, "herald-controller.tar"), filepath.Join(dir, "herald-speaker.tar")}
	builtImages.refs[ref] = imgs
	return imgs
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
			t.Logf("kubectl apply --server-side -f %s: %d objects", f, bytes.Count(bytes.TrimSpace(out), []byte("\n"))+1)
		}
		return
	}
	t.Logf("no kubectl on PATH: server-side apply through the API")
	for _, f := range files {
		applyAll(t, bed, f, mustRead(t, f))
	}
}

// kubectlDelete runs `kubectl delete -f` (which waits until the objects are
// gone); without kubectl it deletes the same objects, in the same order,
// through the API and waits for them.
func kubectlDelete(t *testing.T, bed *testbed.Bed, file string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if k, err := exec.LookPath("kubectl"); err == nil {
		out, err := exec.CommandContext(ctx, k, "--kubeconfig", bed.AdminKubeconfig, "delete", "--ignore-not-found", "-f", file).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl delete -f %s: %v\n%s", file, err, out)
		}
		t.Logf("kubectl delete -f %s:\n%s", file, bytes.TrimSpace(out))
		return
	}
	t.Logf("no kubectl on PATH: deleting through the API")
	objs := decodeObjects(t, mustRead(t, file))
	bg := metav1.DeletePropagationBackground
	for _, o := range objs {
		ri, err := bed.Resource(o.GroupVersionKind(), o.GetNamespace())
		if err != nil {
			continue // a CRD's kind, gone with its CRD
		}
		if err := ri.Delete(ctx, o.GetName(), metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil && !apierrors.IsNotFound(err) {
			t.Fatalf("delete %s: %v", objectID(o), err)
		}
	}
	for _, o := range objs {
		waitUntil(t, 3*time.Minute, objectID(o)+" gone", func(ctx context.Context) (bool, string) {
			ri, err := bed.Resource(o.GroupVersionKind(), o.GetNamespace())
			if err != nil {
				return true, ""
			}
			_, err = ri.Get(ctx, o.GetName(), metav1.GetOptions{})
			return apierrors.IsNotFound(err), fmt.Sprint(err)
		})
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
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
		case <-time.After(250 * time.Millisecond):
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

// realBed is a real-nodes bed with a router, and what the install tests
// learn about it as they go.
type realBed struct {
	t    *testing.T
	bed  *testbed.Bed
	root string
	// sysctls are the host's values before the bed started.
	sysctls map[string]string
}

const realNodesCount = 2

func startRealBed(t *testing.T, images []string) *realBed {
	t.Helper()
	rb := &realBed{t: t, root: repoRoot(t), sysctls: map[string]string{}}
	for _, k := range []string{"vm.overcommit_memory", "kernel.panic", "kernel.panic_on_oops"} {
		b, _ := os.ReadFile("/proc/sys/" + strings.ReplaceAll(k, ".", "/"))
		rb.sysctls[k] = strings.TrimSpace(string(b))
	}
	rb.bed = testbed.Start(t, testbed.Options{Nodes: realNodesCount, Router: true, RealNodes: true, Images: images, NoCRDs: true})
	t.Logf("figure: real-nodes bed (%d kubelets Ready, router) up in %v", realNodesCount, rb.bed.StartDuration.Round(time.Millisecond))
	return rb
}

// close tears the bed down and checks what it leaves on the host.
func (rb *realBed) close() {
	t := rb.t
	if t.Failed() {
		return // the bed's cleanup shows its logs, then tears it down
	}
	prefix := rb.bed.Prefix
	if err := rb.bed.Close(); err != nil {
		t.Fatalf("teardown: %v", err)
	}
	for k, v := range rb.sysctls {
		b, _ := os.ReadFile("/proc/sys/" + strings.ReplaceAll(k, ".", "/"))
		if got := strings.TrimSpace(string(b)); got != v {
			t.Errorf("sysctl %s is %s after teardown, was %s", k, got, v)
		}
	}
	if left, _ := filepath.Glob("/sys/fs/cgroup/*/" + prefix + "-*"); len(left) > 0 {
		t.Errorf("cgroups left after teardown: %v", left)
	}
}

func (rb *realBed) node(name string) *testbed.Node {
	for _, n := range rb.bed.Nodes {
		if n.Name == name {
			return n
		}
	}
	rb.t.Fatalf("no node %q", name)
	return nil
}

// waitHerald waits until both controller replicas and a speaker on every
// schedulable node are Ready and up to date.
func (rb *realBed) waitHerald(how string, speakers int) {
	t, bed, ns := rb.t, rb.bed, testbed.HeraldNamespace
	d := waitUntil(t, 5*time.Minute, "herald-controller 2/2 Ready and herald-speaker Ready on every node", func(ctx context.Context) (bool, string) {
		dep, err := bed.Client.AppsV1().Deployments(ns).Get(ctx, "herald-controller", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		ds, err := bed.Client.AppsV1().DaemonSets(ns).Get(ctx, "herald-speaker", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		ok := dep.Status.ReadyReplicas == 2 && dep.Status.UpdatedReplicas == 2 && dep.Status.Replicas == 2 &&
			ds.Status.DesiredNumberScheduled == int32(speakers) && ds.Status.NumberReady == int32(speakers) &&
			ds.Status.UpdatedNumberScheduled == int32(speakers)
		return ok, fmt.Sprintf("controller ready %d/2, speaker ready %d/%d (want %d); pods: %s",
			dep.Status.ReadyReplicas, ds.Status.NumberReady, ds.Status.DesiredNumberScheduled, speakers, podsStatus(ctx, bed, ns))
	})
	t.Logf("figure: %s -> controller 2/2 and speaker %d/%d Ready in %v", how, speakers, speakers, d.Round(time.Millisecond))
}

// checkPods checks the running Herald pods against the rendered install:
// the images, no restart, the pod and container securityContext as
// rendered, and what the kernel says of each container's process (user,
// capabilities, no_new_privs, seccomp, read-only root); then the metrics
// endpoints and the logs (no RBAC refusal).
func (rb *realBed) checkPods(objs []*unstructured.Unstructured, ctrlImage, spkImage string) {
	t, bed := rb.t, rb.bed
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ctrlTpl, spkTpl := heraldWorkloads(t, objs)
	pods, err := bed.Client.CoreV1().Pods(testbed.HeraldNamespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		tpl, image := ctrlTpl, ctrlImage
		if p.Labels["app.kubernetes.io/component"] == "speaker" {
			tpl, image = spkTpl, spkImage
		}
		if !reflect.DeepEqual(p.Spec.SecurityContext, tpl.Spec.SecurityContext) {
			t.Errorf("pod %s: securityContext %+v, the install renders %+v", p.Name, p.Spec.SecurityContext, tpl.Spec.SecurityContext)
		}
		if p.Spec.ServiceAccountName != tpl.Spec.ServiceAccountName || p.Spec.HostNetwork != tpl.Spec.HostNetwork {
			t.Errorf("pod %s: serviceAccount %s hostNetwork %v, the install renders %s %v", p.Name,
				p.Spec.ServiceAccountName, p.Spec.HostNetwork, tpl.Spec.ServiceAccountName, tpl.Spec.HostNetwork)
		}
		want := tpl.Spec.Containers[0]
		if !reflect.DeepEqual(p.Spec.Containers[0].SecurityContext, want.SecurityContext) {
			t.Errorf("pod %s: container securityContext %+v, the install renders %+v", p.Name, p.Spec.Containers[0].SecurityContext, want.SecurityContext)
		}
		if !apiequality.Semantic.DeepEqual(p.Spec.Containers[0].Resources, want.Resources) {
			t.Errorf("pod %s: resources %+v, the install renders %+v", p.Name, p.Spec.Containers[0].Resources, want.Resources)
		}
		node := rb.node(p.Spec.NodeName)
		for _, cs := range p.Status.ContainerStatuses {
			if cs.RestartCount > 0 {
				t.Errorf("pod %s container %s restarted %d times", p.Name, cs.Name, cs.RestartCount)
			}
			if cs.Image != image {
				t.Errorf("pod %s runs image %s, want %s (built by make images)", p.Name, cs.Image, image)
			}
			pid, err := node.ContainerPID(ctx, cs.ContainerID)
			if err != nil {
				t.Errorf("pod %s: %v", p.Name, err)
				continue
			}
			checkProcess(t, p.Name, pid, p.Spec.SecurityContext, want.SecurityContext)
			checkMemoryLimit(t, p.Name, pid, want.Resources)
		}
		rb.checkMetrics(p, node)
		rb.checkLogs(ctx, p)
	}
}

// checkProcess compares what the kernel says of a container's process with
// its securityContext: uid, effective and bounding capabilities when it drops
// ALL, no_new_privs, seccomp filter, read-only root filesystem.
func checkProcess(t *testing.T, pod string, pid int, psc *corev1.PodSecurityContext, sc *corev1.SecurityContext) {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Errorf("pod %s: %v", pod, err)
		return
	}
	field := func(name string) string {
		for _, l := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(l, name+":"); ok {
				return strings.TrimSpace(v)
			}
		}
		return ""
	}
	var uid *int64
	if psc != nil && psc.RunAsUser != nil {
		uid = psc.RunAsUser
	}
	if sc != nil && sc.RunAsUser != nil {
		uid = sc.RunAsUser
	}
	if uid != nil {
		if got := strings.Fields(field("Uid")); len(got) == 0 || got[1] != fmt.Sprint(*uid) {
			t.Errorf("pod %s: process runs as uid %v, the install says %d", pod, got, *uid)
		}
	}
	if sc == nil || sc.Capabilities == nil {
		t.Errorf("pod %s: the install sets no capabilities; Herald's containers drop ALL", pod)
		return
	}
	dropsAll := false
	for _, c := range sc.Capabilities.Drop {
		dropsAll = dropsAll || c == "ALL"
	}
	if dropsAll {
		var want uint64
		for _, c := range sc.Capabilities.Add {
			bit, ok := capBits[strings.TrimPrefix(string(c), "CAP_")]
			if !ok {
				t.Errorf("pod %s: unknown capability %s in the install", pod, c)
				continue
			}
			want |= 1 << bit
		}
		for _, f := range []string{"CapEff", "CapBnd"} {
			var got uint64
			fmt.Sscanf(field(f), "%x", &got)
			// A non-root process has no effective capabilities even with
			// some in its bounding set (no ambient capabilities).
			w := want
			if f == "CapEff" && uid != nil && *uid != 0 {
				w = 0
			}
			if got != w {
				t.Errorf("pod %s: %s %#x, the install's capabilities %v give %#x", pod, f, got, sc.Capabilities.Add, w)
			}
		}
	}
	if sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation && field("NoNewPrivs") != "1" {
		t.Errorf("pod %s: NoNewPrivs %s, the install disallows privilege escalation", pod, field("NoNewPrivs"))
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil && psc != nil {
		seccomp = psc.SeccompProfile
	}
	if seccomp != nil && seccomp.Type == corev1.SeccompProfileTypeRuntimeDefault && field("Seccomp") != "2" {
		t.Errorf("pod %s: Seccomp mode %s, the install asks RuntimeDefault (a filter, mode 2)", pod, field("Seccomp"))
	}
	if sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem {
		mi, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
		if err != nil {
			t.Errorf("pod %s: %v", pod, err)
			return
		}
		for _, l := range strings.Split(string(mi), "\n") {
			f := strings.Fields(l)
			if len(f) > 5 && f[4] == "/" && !strings.HasPrefix(f[5], "ro") {
				t.Errorf("pod %s: root filesystem mounted %s, the install asks read-only", pod, f[5])
			}
		}
	}
}

// checkMemoryLimit reads the memory limit the kubelet gave the container's
// cgroup (cgroup v1, as on this machine) and compares it with the install's.
func checkMemoryLimit(t *testing.T, pod string, pid int, r corev1.ResourceRequirements) {
	t.Helper()
	lim, ok := r.Limits[corev1.ResourceMemory]
	if !ok {
		return
	}
	cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Errorf("pod %s: %v", pod, err)
		return
	}
	for _, l := range strings.Split(string(cg), "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) != 3 || !slices.Contains(strings.Split(f[1], ","), "memory") {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/memory", f[2], "memory.limit_in_bytes"))
		if err != nil {
			t.Errorf("pod %s: %v", pod, err)
			return
		}
		if got := strings.TrimSpace(string(b)); got != fmt.Sprint(lim.Value()) {
			t.Errorf("pod %s: memory cgroup limit %s bytes, the install's limit is %s (%d)", pod, got, lim.String(), lim.Value())
		}
		return
	}
	t.Logf("pod %s: no cgroup v1 memory controller; limit not checked", pod)
}

// capBits are the capability numbers of linux/capability.h.
var capBits = map[string]uint{
	"CHOWN": 0, "DAC_OVERRIDE": 1, "DAC_READ_SEARCH": 2, "FOWNER": 3, "FSETID": 4, "KILL": 5, "SETGID": 6,
	"SETUID": 7, "SETPCAP": 8, "LINUX_IMMUTABLE": 9, "NET_BIND_SERVICE": 10, "NET_BROADCAST": 11,
	"NET_ADMIN": 12, "NET_RAW": 13, "IPC_LOCK": 14, "IPC_OWNER": 15, "SYS_MODULE": 16, "SYS_RAWIO": 17,
	"SYS_CHROOT": 18, "SYS_PTRACE": 19, "SYS_PACCT": 20, "SYS_ADMIN": 21, "SYS_BOOT": 22, "SYS_NICE": 23,
	"SYS_RESOURCE": 24, "SYS_TIME": 25, "SYS_TTY_CONFIG": 26, "MKNOD": 27, "LEASE": 28, "AUDIT_WRITE": 29,
	"AUDIT_CONTROL": 30, "SETFCAP": 31, "MAC_OVERRIDE": 32, "MAC_ADMIN": 33, "SYSLOG": 34, "WAKE_ALARM": 35,
	"BLOCK_SUSPEND": 36, "AUDIT_READ": 37, "PERFMON": 38, "BPF": 39, "CHECKPOINT_RESTORE": 40,
}

// metricsToken returns a token of a ServiceAccount bound to
// herald-metrics-reader (made again after an uninstall took it).
func (rb *realBed) metricsToken() string {
	rb.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return metricsScraperToken(ctx, rb.t, rb.bed.Client)
}

// checkMetrics reads the metrics endpoint the install's metrics Services
// point at (port 7472): speakers on the node's address (host network),
// controllers on the pod's.
func (rb *realBed) checkMetrics(p corev1.Pod, node *testbed.Node) {
	t := rb.t
	// TLS (self-signed) and a token allowed GET /metrics, as Prometheus
	// scrapes with config/rbac's herald-metrics-reader.
	url := fmt.Sprintf("https://%s/metrics", testbed.HostPort(mustAddr(t, p.Status.PodIP), 7472))
	hc := node.HTTPClient(5 * time.Second)
	hc.Transport.(*http.Transport).TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+rb.metricsToken())
	resp, err := hc.Do(req)
	if err != nil {
		t.Errorf("pod %s: metrics: %v", p.Name, err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("herald_")) {
		t.Errorf("pod %s: GET %s: %d, herald metrics: %v", p.Name, url, resp.StatusCode, bytes.Contains(body, []byte("herald_")))
	}
}

// podLog returns the logs of a pod's containers, read from its node's pod
// log directory (the kubelet's podLogsDir): the bed's API server cannot
// reach the kubelets (its namespace has no route to the nodes).
func (rb *realBed) podLog(p corev1.Pod) (string, error) {
	files, err := filepath.Glob(filepath.Join(rb.bed.RunDir, "nodes", p.Spec.NodeName, "pod-logs",
		p.Namespace+"_"+p.Name+"_"+string(p.UID), "*", "*.log"))
	if err != nil || len(files) == 0 {
		return "", fmt.Errorf("pod %s: no log file on %s (%v)", p.Name, p.Spec.NodeName, err)
	}
	var s strings.Builder
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		s.Write(b)
	}
	return s.String(), nil
}

// checkLogs fails on an RBAC refusal in a pod's log: the install's roles
// must be enough for everything Herald does.
func (rb *realBed) checkLogs(_ context.Context, p corev1.Pod) {
	logs, err := rb.podLog(p)
	if err != nil {
		rb.t.Errorf("pod %s: logs: %v", p.Name, err)
		return
	}
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "forbidden") || strings.Contains(l, "Forbidden") {
			rb.t.Errorf("pod %s: the install's RBAC refused something: %s", p.Name, l)
		}
	}
}

// podLogs returns the logs of the Herald pods the selector picks.
func (rb *realBed) podLogs(ctx context.Context, selector string) string {
	pods, err := rb.bed.Client.CoreV1().Pods(testbed.HeraldNamespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return err.Error()
	}
	var s strings.Builder
	for _, p := range pods.Items {
		l, err := rb.podLog(p)
		if err != nil {
			l = err.Error()
		}
		s.WriteString(l)
	}
	return s.String()
}

// l2Example applies examples/l2 (a pool, an advertisement, a web Deployment
// and its Service), optionally changing the Service, and waits until the L2
// client reaches the web pods through the Service's IP.
func (rb *realBed) l2Example(mutate func(u *unstructured.Unstructured)) netip.Addr {
	t, bed := rb.t, rb.bed
	begin := time.Now()
	kubectlApply(t, bed, filepath.Join(rb.root, "examples", "l2", "herald.yaml"))
	rb.applyServiceFile(filepath.Join(rb.root, "examples", "l2", "service.yaml"), mutate)
	ip := testbed.L2PoolFirst
	rb.waitService("herald-example-l2", ip, bed.ClientL2.NS, "the L2 client", begin)
	return ip
}

// bgpExample configures the router as examples/bgp/frr.conf says, applies
// examples/bgp and waits until every node has an established session, the
// Service an IP of the pool, the router a route with a next hop per node,
// and the client behind the router an answer from the web pods.
func (rb *realBed) bgpExample(mutate func(u *unstructured.Unstructured)) netip.Addr {
	t, bed := rb.t, rb.bed
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	begin := time.Now()
	rb.configureRouterFromExample(ctx)
	kubectlApply(t, bed, filepath.Join(rb.root, "examples", "bgp", "herald.yaml"))
	rb.applyServiceFile(filepath.Join(rb.root, "examples", "bgp", "service.yaml"), mutate)
	ip := rb.waitService("herald-example-bgp", netip.Addr{}, bed.ClientExt.NS, "the client behind the router", begin)
	if !testbed.BGPPoolPrefix.Contains(ip) {
		t.Errorf("BGP example Service got %s, not an address of the bgp pool %s", ip, testbed.BGPPoolPrefix)
	}
	dStable := waitUntil(t, 2*time.Minute, fmt.Sprintf("router: a session per node, up for 10s, and a route to %s through every node", ip), func(ctx context.Context) (bool, string) {
		peers, err := bed.Router.BGPSummary(ctx, false)
		if err != nil {
			return false, err.Error()
		}
		// Established for 10s: FRR re-registers a neighbour's BFD
		// session when BGP first comes up, which the node sees as BFD
		// down once (then reconnects after the peer's connectTime).
		up := 0
		for _, p := range peers {
			if p.State == "Established" && p.PeerUptimeMsec >= 10000 {
				up++
			}
		}
		routes, err := bed.Router.Routes(ctx, netip.PrefixFrom(ip, 32))
		if err != nil {
			return false, err.Error()
		}
		hops := 0
		if len(routes) == 1 {
			hops = len(routes[0].NextHops())
		}
		return up == realNodesCount && hops == realNodesCount, fmt.Sprintf("%d sessions established for 10s, routes %+v; %+v", up, routes, peers)
	})
	t.Logf("figure: BGP sessions of every node stable (10s) and ECMP route in place %v after the Service answered", dStable.Round(time.Millisecond))
	return ip
}

// configureRouterFromExample replaces the router's BGP configuration with
// examples/bgp/frr.conf: the example's AS numbers, password, BFD profile and
// route maps must be what the example's BGPPeer works with.
func (rb *realBed) configureRouterFromExample(ctx context.Context) {
	t := rb.t
	var lines []string
	for _, l := range strings.Split(string(mustRead(t, filepath.Join(rb.root, "examples", "bgp", "frr.conf"))), "\n") {
		s := strings.TrimSpace(l)
		if s == "" || strings.HasPrefix(s, "!") || strings.HasPrefix(s, "frr defaults") || strings.HasPrefix(s, "hostname") || strings.HasPrefix(s, "log ") {
			continue
		}
		lines = append(lines, l)
	}
	if err := rb.bed.Router.Configure(ctx, append([]string{fmt.Sprintf("no router bgp %d", testbed.RouterASN)}, lines...)...); err != nil {
		t.Fatalf("router: examples/bgp/frr.conf: %v", err)
	}
}

// applyServiceFile applies an example's service.yaml, changed by mutate.
func (rb *realBed) applyServiceFile(path string, mutate func(u *unstructured.Unstructured)) {
	t := rb.t
	if mutate == nil {
		kubectlApply(t, rb.bed, path)
		return
	}
	var out [][]byte
	for _, u := range decodeObjects(t, mustRead(t, path)) {
		mutate(u)
		b, err := yaml.Marshal(u.Object)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	f := filepath.Join(t.TempDir(), filepath.Base(filepath.Dir(path))+"-service.yaml")
	if err := os.WriteFile(f, bytes.Join(out, []byte("---\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	kubectlApply(t, rb.bed, f)
}

// waitService waits until the namespace's Service web has one ingress IP
// (want, if valid) and its 2 web pods are Ready, then until the client
// reaches a web pod through the IP.
func (rb *realBed) waitService(ns string, want netip.Addr, from testbed.NS, who string, begin time.Time) netip.Addr {
	t, bed := rb.t, rb.bed
	var ip netip.Addr
	waitUntil(t, 3*time.Minute, fmt.Sprintf("Service %s/web with an ingress IP and 2 web pods Ready", ns), func(ctx context.Context) (bool, string) {
		svc, err := bed.Client.CoreV1().Services(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		dep, err := bed.Client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		ips := ingressIPs(svc)
		ok := len(ips) == 1 && dep.Status.ReadyReplicas == 2
		if ok {
			ip, _ = netip.ParseAddr(ips[0])
			ok = !want.IsValid() || ip == want
		}
		return ok, fmt.Sprintf("ingress %v, web ready %d/2; pods: %s", ips, dep.Status.ReadyReplicas, podsStatus(ctx, bed, ns))
	})
	var reply testbed.Reply
	dReach := waitUntil(t, time.Minute, who+" reaches web through "+ip.String(), func(ctx context.Context) (bool, string) {
		r, err := from.Get(ctx, testbed.HostPort(ip, 80))
		if err != nil {
			return false, err.Error()
		}
		reply = r
		return strings.HasPrefix(r.Pod, "web-"), "answered by " + r.Pod
	})
	t.Logf("figure: %s applied -> %s reaches %s (pod %s) in %v (%v after the IP was set)",
		ns, who, ip, reply.Pod, time.Since(begin).Round(time.Millisecond), dReach.Round(time.Millisecond))
	return ip
}

// serviceWatch records every change of the ingress IPs of some Services.
type serviceWatch struct {
	cancel  context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex
	changes []string
}

// watchServiceIPs watches the Services (namespace/name -> their IP now) and
// records every event that shows another IP list, or a deletion. A watch
// that ends or fails (the bed's API server is slow under load) is resumed
// from a new list, which is checked too.
func watchServiceIPs(t *testing.T, bed *testbed.Bed, want map[string]string) *serviceWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sw := &serviceWatch{cancel: cancel, done: make(chan struct{})}
	check := func(typ string, svc *corev1.Service) {
		key := svc.Namespace + "/" + svc.Name
		ip, watched := want[key]
		if !watched {
			return
		}
		got := strings.Join(ingressIPs(svc), ",")
		if typ == "DELETED" || got != ip {
			sw.mu.Lock()
			sw.changes = append(sw.changes, fmt.Sprintf("%s %s %s: ingress %q, was %q", time.Now().Format("15:04:05.000"), typ, key, got, ip))
			sw.mu.Unlock()
		}
	}
	ready := make(chan struct{})
	go func() {
		defer close(sw.done)
		first := true
		for ctx.Err() == nil {
			list, err := bed.Client.CoreV1().Services("").List(ctx, metav1.ListOptions{})
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			seen := map[string]bool{}
			for i := range list.Items {
				seen[list.Items[i].Namespace+"/"+list.Items[i].Name] = true
				check("LISTED", &list.Items[i])
			}
			for key := range want {
				if !seen[key] {
					sw.mu.Lock()
					sw.changes = append(sw.changes, fmt.Sprintf("%s %s: gone", time.Now().Format("15:04:05.000"), key))
					sw.mu.Unlock()
				}
			}
			w, err := bed.Client.CoreV1().Services("").Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
			if first {
				first = false
				close(ready)
			}
			if err != nil {
				continue
			}
			for ev := range w.ResultChan() {
				svc, ok := ev.Object.(*corev1.Service)
				if !ok {
					break // an error: list again
				}
				check(string(ev.Type), svc)
			}
			w.Stop()
		}
	}()
	<-ready
	return sw
}

func (sw *serviceWatch) stop() []string {
	sw.cancel()
	<-sw.done
	sw.mu.Lock()
	defer sw.mu.Unlock()
	return sw.changes
}

// probes is an L2 and a BGP prober started together, each with a control
// prober from the same client to the same Service's NodePort on node1 (the
// same kube-proxy and pods, without Herald), and a record of the router's
// view (sessions, next hops) while they run, to explain a loss.
type probes struct {
	l2, bgp, l2Ctl, bgpCtl *testbed.Prober
	cancel                 context.CancelFunc
	done                   chan struct{}
	router                 []string
}

// nodePort returns the NodePort of a Service's first port.
func (rb *realBed) nodePort(ns, name string) int {
	svc, err := rb.bed.Client.CoreV1().Services(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		rb.t.Fatal(err)
	}
	return int(svc.Spec.Ports[0].NodePort)
}

func (rb *realBed) startProbes(l2, bgp netip.Addr) *probes {
	ctx, cancel := context.WithCancel(context.Background())
	const every, timeout = 10 * time.Millisecond, 3 * time.Second
	node := rb.bed.Nodes[0].IP
	p := &probes{
		l2:     testbed.Probe(ctx, rb.bed.ClientL2.NS, testbed.HostPort(l2, 80), every, timeout),
		bgp:    testbed.Probe(ctx, rb.bed.ClientExt.NS, testbed.HostPort(bgp, 80), every, timeout),
		l2Ctl:  testbed.Probe(ctx, rb.bed.ClientL2.NS, testbed.HostPort(node, rb.nodePort("herald-example-l2", "web")), every, timeout),
		bgpCtl: testbed.Probe(ctx, rb.bed.ClientExt.NS, testbed.HostPort(node, rb.nodePort("herald-example-bgp", "web")), every, timeout),
		cancel: cancel,
		done:   make(chan struct{}),
	}
	go func() {
		defer close(p.done)
		last := ""
		for ctx.Err() == nil {
			var s []string
			if peers, err := rb.bed.Router.BGPSummary(ctx, false); err == nil {
				for addr, n := range peers {
					s = append(s, fmt.Sprintf("%s %s up=%d down=%d", addr, n.State, n.ConnectionsUp, n.ConnectionsDown))
				}
			}
			sort.Strings(s)
			if routes, err := rb.bed.Router.Routes(ctx, netip.PrefixFrom(bgp, 32)); err == nil {
				for _, r := range routes {
					s = append(s, "via "+strings.Join(r.NextHops(), ","))
				}
			}
			if cur := strings.Join(s, "; "); cur != last && ctx.Err() == nil {
				p.router = append(p.router, time.Now().Format("15:04:05.000")+" "+cur)
				last = cur
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return p
}

// stop stops the probers and returns the L2 and BGP reports, in which a
// failed probe counts as answered when its control prober also failed
// within 100 ms: then the machine stalled (this bed shares 2 cores), not
// the path Herald provides. The raw figures are logged.
func (p *probes) stop(t *testing.T, what string) (l2, bgp testbed.ProbeReport) {
	l2, bgp = p.l2.Stop(), p.bgp.Stop()
	l2Ctl, bgpCtl := p.l2Ctl.Stop(), p.bgpCtl.Stop()
	p.cancel()
	<-p.done
	t.Logf("figure: %s, raw L2: %s", what, describeProbe(l2))
	t.Logf("figure: %s, raw BGP: %s", what, describeProbe(bgp))
	t.Logf("figure: %s, control (NodePort on node1, no Herald): L2 client %d of %d lost, external client %d of %d lost",
		what, l2Ctl.Failed, l2Ctl.Sent, bgpCtl.Failed, bgpCtl.Sent)
	l2, bgp = excuse(l2, l2Ctl), excuse(bgp, bgpCtl)
	if bgp.Failed > 0 {
		t.Logf("the router's sessions and next hops while probing:\n%s", strings.Join(p.router, "\n"))
	}
	return l2, bgp
}

// excuse counts as answered the failed probes of r that a failed probe of
// ctl, sent within 100 ms, explains.
func excuse(r, ctl testbed.ProbeReport) testbed.ProbeReport {
	var bad []time.Time
	for _, c := range ctl.Results {
		if !c.OK {
			bad = append(bad, c.Sent)
		}
	}
	res := append([]testbed.ProbeResult(nil), r.Results...)
	for i, x := range res {
		if x.OK {
			continue
		}
		j := sort.Search(len(bad), func(k int) bool { return !bad[k].Before(x.Sent.Add(-100 * time.Millisecond)) })
		if j < len(bad) && bad[j].Before(x.Sent.Add(100*time.Millisecond)) {
			res[i].OK, res[i].Pod = true, "(machine stall)"
		}
	}
	return testbed.Report(res)
}

// keptPace reports the window r's probes spanned, and whether they went
// out at half the 10 ms pace or better over it (at least 300 of them). A
// fast roll makes a short window, which is no failure of the prober.
func keptPace(r testbed.ProbeReport) (time.Duration, bool) {
	if len(r.Results) < 2 {
		return 0, false
	}
	window := r.Results[len(r.Results)-1].Sent.Sub(r.Results[0].Sent) // in send order
	return window, r.Sent >= 300 && float64(r.Sent) >= 0.5*float64(window/(10*time.Millisecond))
}

func describeProbe(r testbed.ProbeReport) string {
	var o []string
	for _, x := range r.Outages {
		o = append(o, fmt.Sprintf("%s+%v", x.Start.Format("15:04:05.000"), x.Duration().Round(time.Millisecond)))
	}
	return fmt.Sprintf("%d probes, %d lost, longest outage %v, outages %v, answered by %d pods",
		r.Sent, r.Failed, r.LongestOutage().Round(time.Millisecond), o, len(r.ByPod))
}

// rollingUpgrade applies the install again with the second image set (a
// user's upgrade to the next release) while an L2 and a BGP client probe
// their Services every 10 ms, waits until the DaemonSet and the Deployment
// have rolled, and checks the figures: no BGP probe lost, L2 outages under a
// second, no Service losing or changing its IP.
func (rb *realBed) rollingUpgrade(upgrade func(), l2, bgp netip.Addr, ctrlImage, spkImage, version string) {
	t, bed := rb.t, rb.bed
	ns := testbed.HeraldNamespace
	sw := watchServiceIPs(t, bed, map[string]string{"herald-example-l2/web": l2.String(), "herald-example-bgp/web": bgp.String()})
	p := rb.startProbes(l2, bgp)
	lctx, stopLogs := context.WithCancel(context.Background())
	defer stopLogs()
	logs := rb.keepLogs(lctx)
	time.Sleep(time.Second) // a baseline before the roll
	begin := time.Now()
	defer func() {
		if t.Failed() {
			t.Logf("the Herald pods' log lines, old and new, from the start of the roll:\n%s", logs.since(begin.Add(-time.Second)))
		}
	}()
	upgrade()
	d := waitUntil(t, 6*time.Minute, "DaemonSet and Deployment rolled to "+version, func(ctx context.Context) (bool, string) {
		dep, err := bed.Client.AppsV1().Deployments(ns).Get(ctx, "herald-controller", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		ds, err := bed.Client.AppsV1().DaemonSets(ns).Get(ctx, "herald-speaker", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		ok := dep.Status.ObservedGeneration >= dep.Generation && dep.Spec.Template.Spec.Containers[0].Image == ctrlImage &&
			dep.Status.UpdatedReplicas == 2 && dep.Status.Replicas == 2 && dep.Status.AvailableReplicas == 2 &&
			ds.Status.ObservedGeneration >= ds.Generation && ds.Spec.Template.Spec.Containers[0].Image == spkImage &&
			ds.Status.UpdatedNumberScheduled == ds.Status.DesiredNumberScheduled && ds.Status.NumberAvailable == ds.Status.DesiredNumberScheduled &&
			ds.Status.NumberReady == ds.Status.DesiredNumberScheduled
		if ok {
			pods, err := bed.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, err.Error()
			}
			ok = len(pods.Items) == 2+int(ds.Status.DesiredNumberScheduled)
		}
		return ok, fmt.Sprintf("controller updated %d available %d of %d; speaker updated %d available %d of %d; pods: %s",
			dep.Status.UpdatedReplicas, dep.Status.AvailableReplicas, dep.Status.Replicas,
			ds.Status.UpdatedNumberScheduled, ds.Status.NumberAvailable, ds.Status.DesiredNumberScheduled, podsStatus(ctx, bed, ns))
	})
	time.Sleep(2 * time.Second) // and after
	rl2, rbgp := p.stop(t, "rolling upgrade")
	changes := sw.stop()
	t.Logf("figure: rolling upgrade to %s: DaemonSet and Deployment rolled in %v", version, d.Round(time.Millisecond))
	t.Logf("figure: rolling upgrade, L2 %s, stalls excused: %s", l2, describeProbe(rl2))
	t.Logf("figure: rolling upgrade, BGP %s, stalls excused: %s", bgp, describeProbe(rbgp))
	_ = begin
	if rbgp.Failed > 0 {
		t.Errorf("BGP: %d probes lost during the rolling upgrade, want none", rbgp.Failed)
	}
	if rl2.LongestOutage() >= time.Second {
		t.Errorf("L2: longest outage %v during the rolling upgrade, want under a second (one failover)", rl2.LongestOutage())
	}
	for _, r := range []struct {
		name string
		rep  testbed.ProbeReport
	}{{"L2", rl2}, {"BGP", rbgp}} {
		if window, ok := keptPace(r.rep); !ok {
			t.Errorf("%s: only %d probes in %v: the prober did not keep its 10 ms pace, so its figure proves little",
				r.name, r.rep.Sent, window.Round(time.Millisecond))
		}
	}
	for _, c := range changes {
		t.Errorf("a Service's IP changed during the rolling upgrade: %s", c)
	}
	// The new version is what runs.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, sel := range []string{"app.kubernetes.io/component=controller", "app.kubernetes.io/component=speaker"} {
		logs := rb.podLogs(ctx, sel)
		if !strings.Contains(logs, `"version":"`+version+`"`) {
			t.Errorf("pods %s: no log line says version=%s after the upgrade", sel, version)
		}
	}
}

// nodeNetState is what Herald could leave on a node: addresses, proxy and
// permanent neighbour entries, firewall rules (without kube-proxy's and the
// CNI's own chains), listening sockets on Herald's ports. Pod veths come and
// go with the example pods and are left out.
func (rb *realBed) nodeNetState() map[string]string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out := map[string]string{}
	for _, n := range rb.bed.Nodes {
		var s strings.Builder
		for _, argv := range [][]string{
			{"ip", "-o", "addr", "show"},
			{"ip", "neigh", "show", "proxy"},
			{"ip", "-6", "neigh", "show", "proxy"},
			{"ip", "neigh", "show", "nud", "permanent"},
			{"iptables-save"},
			{"ip6tables-save"},
			{"nft", "list", "tables"},
			{"ss", "-Hlntu", "sport = :7946 or sport = :7472 or sport = :7473 or sport = :179"},
		} {
			o, err := n.Run(ctx, argv...)
			if err != nil {
				o = err.Error()
			}
			for _, l := range strings.Split(o, "\n") {
				if strings.Contains(l, "veth") || strings.Contains(l, "cni0") || strings.Contains(l, "KUBE-") || strings.Contains(l, "CNI-") ||
					strings.HasPrefix(l, "#") || strings.HasPrefix(l, ":") && strings.Contains(l, "[") {
					continue
				}
				fmt.Fprintf(&s, "%s: %s\n", strings.Join(argv[:min(2, len(argv))], " "), l)
			}
		}
		out[n.Name] = s.String()
	}
	return out
}

// uninstall runs remove while both clients probe, and checks that the
// Services kept answering until the first speaker was told to stop, that no
// Herald object is left, that the nodes are as before the install, and that
// the router lost Herald's sessions and routes.
func (rb *realBed) uninstall(how string, remove func(), l2, bgp netip.Addr, before map[string]string) {
	t, bed := rb.t, rb.bed
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// When the first speaker pod is told to stop (a deletion timestamp),
	// polled: a watch of the bed's loaded API server may fail.
	var mu sync.Mutex
	var firstStop time.Time
	wctx, wcancel := context.WithCancel(ctx)
	wdone := make(chan struct{})
	go func() {
		defer close(wdone)
		for wctx.Err() == nil {
			pods, err := bed.Client.CoreV1().Pods(testbed.HeraldNamespace).List(wctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=speaker"})
			if err == nil {
				stopping := len(pods.Items) < realNodesCount
				for _, p := range pods.Items {
					stopping = stopping || p.DeletionTimestamp != nil
				}
				if stopping {
					mu.Lock()
					firstStop = time.Now()
					mu.Unlock()
					return
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	sw := watchServiceIPs(t, bed, map[string]string{"herald-example-l2/web": l2.String(), "herald-example-bgp/web": bgp.String()})
	p := rb.startProbes(l2, bgp)
	logs := rb.keepLogs(wctx)
	time.Sleep(time.Second)
	begin := time.Now()
	remove()
	d := time.Since(begin)
	rl2, rbgp := p.stop(t, how)
	if changes := sw.stop(); len(changes) > 0 {
		t.Errorf("%s: the Services' addresses changed before the speakers stopped:\n%s", how, strings.Join(changes, "\n"))
	}
	wcancel()
	<-wdone
	defer func() {
		if t.Failed() {
			t.Logf("the Herald pods' last log lines, from the start of %s:\n%s", how, logs.since(begin.Add(-time.Second)))
		}
	}()
	t.Logf("figure: %s took %v", how, d.Round(time.Millisecond))
	t.Logf("figure: during %s, L2 %s, stalls excused: %s", how, l2, describeProbe(rl2))
	t.Logf("figure: during %s, BGP %s, stalls excused: %s", how, bgp, describeProbe(rbgp))
	mu.Lock()
	stop := firstStop
	mu.Unlock()
	// The API server may be slow to show the deletion (it is busy deleting
	// the CRDs' objects): a speaker's own "told to stop" line is earlier.
	if told := logs.first(`"msg":"told to stop`); !told.IsZero() && (stop.IsZero() || told.Before(stop)) {
		stop = told
	}
	if stop.IsZero() {
		t.Errorf("%s: no speaker pod was seen stopping", how)
	} else {
		for name, r := range map[string]testbed.ProbeReport{"L2": rl2, "BGP": rbgp} {
			for _, x := range r.Results {
				// A probe counts by when it failed: one in flight when a
				// speaker stops fails with the stop (reset by the node
				// that takes over, or timed out once the route is
				// withdrawn; on this loaded 2-core bed a request can be in
				// flight for over a second). So a path broken less than
				// the probe time-out (3 s) before the stop would pass
				// unseen; one broken earlier fails this.
				if !x.OK && x.Sent.Add(x.Took).Before(stop) {
					t.Errorf("%s: a %s probe sent at %s failed (%s after %v), %v before the first speaker was told to stop: the Service must keep working until the speakers stop",
						how, name, x.Sent.Format("15:04:05.000"), x.Err, x.Took.Round(time.Millisecond), stop.Sub(x.Sent.Add(x.Took)).Round(time.Millisecond))
					break
				}
			}
		}
		t.Logf("figure: %s: first speaker told to stop %v after the start", how, stop.Sub(begin).Round(time.Millisecond))
	}

	// No Herald object left.
	crds, err := bed.Dynamic.Resource(crdGVR).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range crds.Items {
		if strings.HasSuffix(c.GetName(), ".herald.io") {
			t.Errorf("%s left CRD %s", how, c.GetName())
		}
	}
	if _, err := bed.Client.CoreV1().Namespaces().Get(ctx, testbed.HeraldNamespace, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("%s left namespace %s (%v)", how, testbed.HeraldNamespace, err)
	}
	crs, _ := bed.Client.RbacV1().ClusterRoles().List(ctx, metav1.ListOptions{})
	for _, r := range crs.Items {
		if strings.Contains(r.Name, "herald") {
			t.Errorf("%s left ClusterRole %s", how, r.Name)
		}
	}
	crbs, _ := bed.Client.RbacV1().ClusterRoleBindings().List(ctx, metav1.ListOptions{})
	for _, r := range crbs.Items {
		if strings.Contains(r.Name, "herald") {
			t.Errorf("%s left ClusterRoleBinding %s", how, r.Name)
		}
	}
	leases, _ := bed.Client.CoordinationV1().Leases("").List(ctx, metav1.ListOptions{})
	for _, l := range leases.Items {
		if strings.Contains(l.Name, "herald") {
			t.Errorf("%s left Lease %s/%s", how, l.Namespace, l.Name)
		}
	}

	// The speakers are gone: the router has no session and no route left,
	// and no node answers ARP for the L2 address.
	waitUntil(t, time.Minute, "router: no session and no route to "+bgp.String(), func(ctx context.Context) (bool, string) {
		peers, err := bed.Router.BGPSummary(ctx, false)
		if err != nil {
			return false, err.Error()
		}
		routes, err := bed.Router.Routes(ctx, netip.PrefixFrom(bgp, 32))
		if err != nil {
			return false, err.Error()
		}
		up := 0
		for _, p := range peers {
			if p.State == "Established" {
				up++
			}
		}
		return up == 0 && len(routes) == 0, fmt.Sprintf("%d sessions up, routes %+v", up, routes)
	})
	if out, err := bed.ClientL2.Run(ctx, "arping", "-c", "2", "-w", "2", "-I", "eth0", l2.String()); err == nil {
		t.Errorf("after %s a node still answers ARP for %s:\n%s", how, l2, out)
	}
	after := rb.nodeNetState()
	for node, b := range before {
		if a := after[node]; a != b {
			t.Errorf("%s: node %s differs from before the install (-before +after):\n%s", how, node, lineDiff(b, a))
		}
	}
}

// podLogKeeper keeps the Herald pods' logs while they are being deleted:
// the kubelet removes a pod's log files with the pod.
type podLogKeeper struct {
	mu   sync.Mutex
	logs map[string]string // pod name → its log, as last read
}

// keepLogs reads the Herald pods' logs every 100 ms until ctx ends, the
// pods that start meanwhile (a roll's new pods) included.
func (rb *realBed) keepLogs(ctx context.Context) *podLogKeeper {
	k := &podLogKeeper{logs: map[string]string{}}
	go func() {
		var pods []corev1.Pod
		var listed time.Time
		for ctx.Err() == nil {
			if time.Since(listed) > time.Second {
				l, err := rb.bed.Client.CoreV1().Pods(testbed.HeraldNamespace).List(ctx, metav1.ListOptions{})
				if err == nil {
					listed = time.Now()
					for _, p := range l.Items {
						if !slices.ContainsFunc(pods, func(q corev1.Pod) bool { return q.UID == p.UID }) {
							pods = append(pods, p)
						}
					}
				}
			}
			for _, p := range pods {
				if l, err := rb.podLog(p); err == nil {
					k.mu.Lock()
					k.logs[p.Name] = l
					k.mu.Unlock()
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	return k
}

// first returns the time of the earliest log line (of any pod) that holds
// substr, zero when none does.
func (k *podLogKeeper) first(substr string) time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	var first time.Time
	for _, log := range k.logs {
		for _, l := range strings.Split(log, "\n") {
			if !strings.Contains(l, substr) {
				continue
			}
			ts, _, _ := strings.Cut(l, " ")
			if at, err := time.Parse(time.RFC3339Nano, ts); err == nil && (first.IsZero() || at.Before(first)) {
				first = at
			}
		}
	}
	return first
}

// since returns each pod's log lines (CRI format: an RFC 3339 time first)
// from t on.
func (k *podLogKeeper) since(t time.Time) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var s strings.Builder
	for _, name := range slices.Sorted(maps.Keys(k.logs)) {
		fmt.Fprintf(&s, "--- %s\n", name)
		for _, l := range strings.Split(k.logs[name], "\n") {
			ts, _, _ := strings.Cut(l, " ")
			if at, err := time.Parse(time.RFC3339Nano, ts); err == nil && !at.Before(t) {
				s.WriteString(l + "\n")
			}
		}
	}
	return s.String()
}

// TestRealNodesInstallManifest installs Herald from the all-in-one manifest
// on real kubelets, from the images `make images` builds, as a user would,
// then in the same cluster: the L2 and the BGP examples, a rolling upgrade to
// a second build while both are probed every 10 ms, and the uninstall.
func TestRealNodesInstallManifest(t *testing.T) {
	requireRealNodes(t)
	root := repoRoot(t)
	manifest := filepath.Join(root, "config", "manifests", "herald.yaml")
	objs := readObjects(t, manifest)
	ctrlRef, spkRef := manifestImages(t, objs)
	const nextTag = "v0.0.0-upgrade.test"
	images := buildImages(t, root, ctrlRef)
	images = append(images, buildImages(t, root, retag(ctrlRef, nextTag))...)

	rb := startRealBed(t, images)
	before := rb.nodeNetState()
	kubectlApply(t, rb.bed, manifest)
	rb.waitHerald("kubectl apply --server-side -f config/manifests/herald.yaml", realNodesCount)
	rb.checkPods(objs, ctrlRef, spkRef)
	rb.checkRBAC(objs)

	l2 := rb.l2Example(nil)
	bgp := rb.bgpExample(nil)

	// The upgrade: the same manifest with the next release's images.
	next := filepath.Join(t.TempDir(), "herald-next.yaml")
	nextCtrl, nextSpk := retag(ctrlRef, nextTag), retag(spkRef, nextTag)
	data := strings.NewReplacer(ctrlRef, nextCtrl, spkRef, nextSpk).Replace(string(mustRead(t, manifest)))
	if err := os.WriteFile(next, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	rb.rollingUpgrade(func() { kubectlApply(t, rb.bed, next) }, l2, bgp, nextCtrl, nextSpk, nextTag)
	rb.checkPods(decodeObjects(t, []byte(data)), nextCtrl, nextSpk)

	rb.uninstall("kubectl delete -f herald.yaml", func() { kubectlDelete(t, rb.bed, next) }, l2, bgp, before)
	rb.close()
}

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatalf("address %q: %v", s, err)
	}
	return a
}

// TestKeptPace: a fast roll (956 probes in 9.6 s) kept the 10 ms pace; the
// same number over a minute did not.
func TestKeptPace(t *testing.T) {
	report := func(n int, every time.Duration) testbed.ProbeReport {
		var res []testbed.ProbeResult
		t0 := time.Now()
		for i := range n {
			res = append(res, testbed.ProbeResult{Sent: t0.Add(time.Duration(i) * every), OK: true})
		}
		return testbed.Report(res)
	}
	if w, ok := keptPace(report(956, 10*time.Millisecond)); !ok {
		t.Fatalf("956 probes every 10 ms (%v) counted as a slow prober", w)
	}
	if w, ok := keptPace(report(956, 63*time.Millisecond)); ok {
		t.Fatalf("956 probes every 63 ms (%v) counted as keeping the 10 ms pace", w)
	}
	if _, ok := keptPace(report(200, 10*time.Millisecond)); ok {
		t.Fatal("200 probes counted as enough")
	}
}
