package testbed

// Real nodes: with Options.RealNodes every node namespace also runs its own
// containerd and a kubelet, and the control plane gets kube-controller-manager
// and kube-scheduler, so that Deployments and DaemonSets really create, place
// and start pods. The recipe is the one tried on these machines
// (shared/KUBELET.md): containerd 1.6 with restrict_oom_score_adj, a bridge
// CNI, a kubelet that accepts cgroup v1, each node's daemons in one private
// mount namespace, and the host-global settings the kubelet changes saved
// before and restored after.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Images of the real-nodes bed's own pods; nothing is ever pulled.
const (
	// PauseImage is the sandbox image containerd runs for every pod.
	PauseImage = "registry.k8s.io/pause:3.10"
	// AgnhostImage is the web backend the examples use; the bed's stand-in
	// implements `agnhost netexec --http-port=N` (e2etest/cmd/agnhost).
	AgnhostImage = "registry.k8s.io/e2e-test-images/agnhost:2.53"
)

// RealNodeRecord is what the state file records of a real node, so that a
// teardown by another process (testbed down, Sweep) can empty its containerd
// and remove its cgroups.
type RealNodeRecord struct {
	Name       string   `json:"name"`
	Dir        string   `json:"dir"`
	Socket     string   `json:"socket"`
	Cgroups    []string `json:"cgroups"`
	Kubelet    string   `json:"kubelet"`    // process name
	Containerd string   `json:"containerd"` // process name
	Holder     string   `json:"holder"`     // process name
}

// realNode is the runtime side of a Node with a kubelet.
type realNode struct {
	rec        RealNodeRecord
	holder     *Process
	containerd *Process
	kubelet    *Process
}

// nodeBindMounts are the host paths that each real node sees as a directory
// of its own.
var nodeBindMounts = []string{"/var/lib/kubelet", "/var/log/containers", "/var/log/pods", "/var/lib/cni", "/run/containerd/s"}

// The sysctls the kubelet rewrites at every start (KUBELET.md).
var kubeletSysctls = []string{"vm.overcommit_memory", "kernel.panic", "kernel.panic_on_oops"}

// kubeletPanicSysctls are put back as soon as the nodes are Ready: a panic
// setting of the whole machine must not depend on a test.
var kubeletPanicSysctls = []string{"kernel.panic", "kernel.panic_on_oops"}

func readSysctl(key string) (string, error) {
	b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(key, ".", "/"))
	return strings.TrimSpace(string(b)), err
}

func writeSysctl(key, value string) error {
	return os.WriteFile("/proc/sys/"+strings.ReplaceAll(key, ".", "/"), []byte(value), 0o644)
}

// sysctlSaveFile holds the host's values while any real-nodes bed runs; the
// first bed writes it, the last one (or Sweep) restores and removes it.
func sysctlSaveFile() string { return filepath.Join(RunBase(), "kubelet-sysctls.json") }

// saveSysctls records the host's values of the kubelet's sysctls, unless a
// live bed recorded them already (then those are the host's values).
func (b *Bed) saveSysctls() error {
	if _, err := os.Stat(sysctlSaveFile()); err == nil {
		b.mu.Lock()
		b.state.Sysctls = nil
		b.mu.Unlock()
		return nil
	}
	saved := map[string]string{}
	for _, k := range kubeletSysctls {
		v, err := readSysctl(k)
		if err != nil {
			return err
		}
		saved[k] = v
	}
	data, _ := json.Marshal(saved)
	if err := os.WriteFile(sysctlSaveFile(), data, 0o644); err != nil {
		return err
	}
	b.mu.Lock()
	b.state.Sysctls = saved
	b.mu.Unlock()
	return b.saveState()
}

// restoreSysctls writes back the saved values of keys (all when keys is nil).
func restoreSysctls(log *slog.Logger, keys []string) error {
	data, err := os.ReadFile(sysctlSaveFile())
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var saved map[string]string
	if err := json.Unmarshal(data, &saved); err != nil {
		return err
	}
	if keys == nil {
		for k := range saved {
			keys = append(keys, k)
		}
		sort.Strings(keys)
	}
	var errs []error
	for _, k := range keys {
		v, ok := saved[k]
		if !ok {
			continue
		}
		if cur, _ := readSysctl(k); cur != v {
			log.Debug("restoring sysctl the kubelet changed", "key", k, "from", cur, "to", v)
			if err := writeSysctl(k, v); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// anyLiveRealNodes reports whether a live bed other than except runs real nodes.
func anyLiveRealNodes(except string) bool {
	states, _ := ListStates()
	for _, s := range states {
		if s.Prefix != except && len(s.RealNodes) > 0 && s.live() {
			return true
		}
	}
	return false
}

// cgroupMounts lists the mount points of the mounted cgroup hierarchies of
// the given types ("cgroup" for v1: cpu, memory, name=systemd...; "cgroup2").
func cgroupMounts(types ...string) ([]string, error) {
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && contains(types, f[2]) {
			out = append(out, f[1])
		}
	}
	sort.Strings(out)
	return out, nil
}

// makeCgroupRoot creates the node's cgroup root in every v1 hierarchy: each
// kubelet gets its own, or one would remove the others' pod cgroups as
// orphans.
// The returned list also names the directory in the cgroup2 mount, which the
// kubelet creates there too, so that teardown removes it.
func makeCgroupRoot(name string) ([]string, error) {
	hs, err := cgroupMounts("cgroup")
	if err != nil {
		return nil, err
	}
	if len(hs) == 0 {
		return nil, errors.New("no cgroup v1 hierarchy mounted; the real-nodes bed expects this VM's cgroup v1 layout")
	}
	var made []string
	if v2, _ := cgroupMounts("cgroup2"); len(v2) > 0 {
		for _, h := range v2 {
			made = append(made, filepath.Join(h, name))
		}
	}
	for _, h := range hs {
		d := filepath.Join(h, name)
		if err := os.Mkdir(d, 0o755); err != nil && !os.IsExist(err) {
			return made, err
		}
		made = append(made, d)
		if filepath.Base(h) == "cpuset" {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				v, err := os.ReadFile(filepath.Join(h, f))
				if err != nil {
					return made, err
				}
				if err := os.WriteFile(filepath.Join(d, f), v, 0o644); err != nil {
					return made, err
				}
			}
		}
	}
	return made, nil
}

// removeCgroupTree removes a cgroup directory and its children, deepest
// first (cgroup directories go with rmdir only).
func removeCgroupTree(dir string) error {
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	var errs []error
	for i := len(dirs) - 1; i >= 0; i-- {
		var err error
		for try := 0; try < 50; try++ {
			if err = syscall.Rmdir(dirs[i]); err == nil || errors.Is(err, syscall.ENOENT) {
				err = nil
				break
			}
			// EBUSY while the last task of the cgroup exits.
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("rmdir %s: %w", dirs[i], err))
		}
	}
	return errors.Join(errs...)
}

// buildInfraImages builds the images every real node imports: the pause
// image and the agnhost stand-in, with hack/tools/imagebuild.
func (b *Bed) buildInfraImages(ctx context.Context) ([]string, error) {
	ib, err := b.imagebuildBinary(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, img := range []struct{ cmd, ref string }{{"pause", PauseImage}, {"agnhost", AgnhostImage}} {
		bin := filepath.Join(b.RunDir, "bin", img.cmd)
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "./cmd/"+img.cmd)
		cmd.Dir = filepath.Join(b.opts.RepoRoot, "e2etest")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if o, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build %s: %w: %s", img.cmd, err, o)
		}
		tar := filepath.Join(b.RunDir, "images", img.cmd+".tar")
		if o, err := exec.CommandContext(ctx, ib, "build", "-binary", bin, "-ref", img.ref, "-user", "0:0", "-out", tar).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("image %s: %w: %s", img.ref, err, o)
		}
		out = append(out, tar)
	}
	return out, nil
}

// imagebuildBinary builds hack/tools/imagebuild once per bed.
func (b *Bed) imagebuildBinary(ctx context.Context) (string, error) {
	out := filepath.Join(b.RunDir, "bin", "imagebuild")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := goBuild(ctx, filepath.Join(b.opts.RepoRoot, "hack", "tools", "imagebuild"), out, "."); err != nil {
		return "", err
	}
	return out, nil
}

// startControllers starts kube-controller-manager and kube-scheduler in the
// root namespace, as admin, serving nothing.
func (b *Bed) startControllers(ctx context.Context) error {
	secrets := filepath.Join(b.RunDir, "secrets")
	kcm, err := KubeBinary("kube-controller-manager")
	if err != nil {
		return err
	}
	sched, err := KubeBinary("kube-scheduler")
	if err != nil {
		return err
	}
	if _, err := b.startProcess(ctx, "", "kube-controller-manager", kcm,
		"--kubeconfig="+b.AdminKubeconfig,
		"--service-account-private-key-file="+filepath.Join(secrets, "sa.key"),
		"--root-ca-file="+filepath.Join(secrets, "ca.crt"),
		"--use-service-account-credentials=true",
		"--leader-elect=false",
		"--secure-port=0",
		"--concurrent-deployment-syncs=2", "--concurrent-replicaset-syncs=2",
		"--v=1",
	); err != nil {
		return err
	}
	if _, err := b.startProcess(ctx, "", "kube-scheduler", sched,
		"--kubeconfig="+b.AdminKubeconfig,
		"--authentication-kubeconfig="+b.AdminKubeconfig,
		"--authorization-kubeconfig="+b.AdminKubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
		"--v=1",
	); err != nil {
		return err
	}
	return nil
}

// startRealNode starts the node's mount-namespace holder, containerd (with
// the images imported) and kubelet, and waits until the kubelet reports the
// Node Ready.
func (n *Node) startRealNode(ctx context.Context, images []string, nodeToken string) error {
	b := n.bed
	dir := filepath.Join(b.RunDir, "nodes", n.Name)
	rn := &realNode{rec: RealNodeRecord{
		Name:       n.Name,
		Dir:        dir,
		Socket:     filepath.Join(dir, "containerd", "containerd.sock"),
		Kubelet:    "kubelet-" + n.Name,
		Containerd: "containerd-" + n.Name,
		Holder:     "mntns-" + n.Name,
	}}
	n.real = rn
	for _, d := range []string{"containerd/root", "containerd/state", "runc", "cni/net.d", "cni/ipam", "kubelet", "pod-logs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	cgName := b.Prefix + "-" + n.Name
	cgs, err := makeCgroupRoot(cgName)
	rn.rec.Cgroups = cgs
	b.mu.Lock()
	b.state.RealNodes = append(b.state.RealNodes, rn.rec)
	b.mu.Unlock()
	if err := b.saveState(); err != nil {
		return err
	}
	if err != nil {
		return fmt.Errorf("node %s: cgroups: %w", n.Name, err)
	}

	// One private mount namespace per node, in the node's network namespace;
	// containerd and the kubelet join both, so that the kubelet's volume
	// mounts are seen by containerd and vanish with the node.
	holder, err := b.startProcess(ctx, "", rn.rec.Holder, "nsenter", "--net=/run/netns/"+n.nsName(),
		"unshare", "--mount", "--propagation", "slave", "sleep", "infinity")
	if err != nil {
		return err
	}
	rn.holder = holder
	enter := []string{"nsenter", "-t", strconv.Itoa(holder.PID), "-m", "-n", "--"}
	if err := waitFor(ctx, 20*time.Millisecond, "mount namespace of "+n.Name, func(context.Context) (bool, error) {
		self, _ := os.Readlink("/proc/self/ns/mnt")
		its, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", holder.PID))
		return err == nil && its != self, err
	}); err != nil {
		return err
	}

	// Pods on the node's bridge talk to the API server through the fabric,
	// which masquerades them; its replies need the way back.
	if _, err := run(ctx, "ip", "-n", b.Fabric.Name, "route", "replace", PodCIDR(n.Index).String(), "via", n.IP.String()); err != nil {
		return err
	}
	// The kubelet and containerd also write to fixed host paths (device
	// plugin socket and serving cert under /var/lib/kubelet, log links in
	// /var/log/containers, CNI results in /var/lib/cni, shim sockets in
	// /run/containerd/s). Inside the node's mount namespace each is a bind
	// mount of a directory of the node: nodes do not share them, and they
	// vanish with the node. Only the (empty) mount points are created on the
	// host, and removed at teardown.
	for _, m := range nodeBindMounts {
		src := filepath.Join(dir, "host", strings.ReplaceAll(strings.TrimPrefix(m, "/"), "/", "-"))
		if err := os.MkdirAll(src, 0o755); err != nil {
			return err
		}
		if err := os.MkdirAll(m, 0o755); err != nil {
			return err
		}
		if _, err := run(ctx, append(enter, "mount", "--bind", src, m)...); err != nil {
			return fmt.Errorf("node %s: %w", n.Name, err)
		}
	}
	sub := netip.PrefixFrom(PodCIDR(n.Index).Addr(), 24)
	base := sub.Addr().As4()
	gw, first, last := base, base, base
	gw[3], first[3], last[3] = 1, 224, 254
	cni := fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": "%s",
  "plugins": [{
    "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
    "ipam": {"type": "host-local", "dataDir": "%s",
      "ranges": [[{"subnet": "%s", "rangeStart": "%s", "rangeEnd": "%s", "gateway": "%s"}]],
      "routes": [{"dst": "0.0.0.0/0"}]}
  }]
}
`, cgName, filepath.Join(dir, "cni", "ipam"), sub, netip.AddrFrom4(first), netip.AddrFrom4(last), netip.AddrFrom4(gw))
	if err := os.WriteFile(filepath.Join(dir, "cni", "net.d", "10-bridge.conflist"), []byte(cni), 0o644); err != nil {
		return err
	}
	ccfg := fmt.Sprintf(`version = 2
root = %q
state = %q
oom_score = 0
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = %q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  disable_apparmor = true
  # Pod network namespaces in the node's state directory, not /run/netns.
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = %q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %q
`, filepath.Join(dir, "containerd", "root"), filepath.Join(dir, "containerd", "state"), rn.rec.Socket,
		PauseImage, filepath.Join(dir, "runc"), filepath.Join(dir, "cni", "net.d"))
	ccfgPath := filepath.Join(dir, "containerd.toml")
	if err := os.WriteFile(ccfgPath, []byte(ccfg), 0o644); err != nil {
		return err
	}
	ctrd, err := b.startProcess(ctx, "", rn.rec.Containerd, enter[0], append(enter[1:], "containerd", "--config", ccfgPath)...)
	if err != nil {
		return err
	}
	rn.containerd = ctrd
	if err := waitFor(ctx, 100*time.Millisecond, "containerd of "+n.Name, func(ctx context.Context) (bool, error) {
		if !ctrd.Running() {
			return false, fmt.Errorf("containerd on %s exited; see %s", n.Name, ctrd.Log)
		}
		_, err := run(ctx, "ctr", "-a", rn.rec.Socket, "version")
		return err == nil, err
	}); err != nil {
		return err
	}
	for _, img := range images {
		if _, err := run(ctx, "ctr", "-a", rn.rec.Socket, "-n", "k8s.io", "images", "import", img); err != nil {
			return fmt.Errorf("node %s: import %s: %w", n.Name, img, err)
		}
	}

	kc := filepath.Join(dir, "kubeconfig")
	if err := b.writeKubeconfig(kc, "system:node:"+n.Name, nodeToken); err != nil {
		return err
	}
	kcfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /%s
failSwapOn: false
containerRuntimeEndpoint: unix://%s
podLogsDir: %s
resolvConf: ""
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization:
  mode: AlwaysAllow
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "1%%"
  imagefs.available: "1%%"
  nodefs.inodesFree: "1%%"
maxPods: 30
syncFrequency: 10s
fileCheckFrequency: 10s
nodeStatusUpdateFrequency: 5s
localStorageCapacityIsolation: false
`, cgName, rn.rec.Socket, filepath.Join(dir, "pod-logs"))
	kcfgPath := filepath.Join(dir, "kubelet.yaml")
	if err := os.WriteFile(kcfgPath, []byte(kcfg), 0o644); err != nil {
		return err
	}
	kubelet, err := KubeBinary("kubelet")
	if err != nil {
		return err
	}
	kl, err := b.startProcess(ctx, "", rn.rec.Kubelet, enter[0], append(enter[1:], kubelet,
		"--config="+kcfgPath, "--kubeconfig="+kc, "--root-dir="+filepath.Join(dir, "kubelet"),
		"--hostname-override="+n.Name, "--node-ip="+n.IP.String(), "--v=1")...)
	if err != nil {
		return err
	}
	rn.kubelet = kl
	return waitFor(ctx, 250*time.Millisecond, "kubelet of "+n.Name+" Ready", func(ctx context.Context) (bool, error) {
		if !kl.Running() {
			return false, fmt.Errorf("kubelet on %s exited; see %s", n.Name, kl.Log)
		}
		node, err := b.Client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady {
				if c.Status == corev1.ConditionTrue && c.Reason == "KubeletReady" {
					return true, nil
				}
				return false, fmt.Errorf("node %s: Ready=%s %s: %s", n.Name, c.Status, c.Reason, c.Message)
			}
		}
		return false, nil
	})
}

// teardownRealNodes empties and stops every real node of a bed: the kubelet
// first (so that it restarts nothing), then every task containerd still runs,
// then containerd, the shims it left, the mount namespace, and the cgroups.
func teardownRealNodes(log *slog.Logger, st State, procs []*Process) []error {
	byName := map[string]*Process{}
	for _, p := range procs {
		byName[p.Name] = p
	}
	var errs []error
	stop := func(name string, grace time.Duration) {
		if p := byName[name]; p != nil {
			if err := p.Stop(grace); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, rn := range st.RealNodes {
		stop(rn.Kubelet, 5*time.Second)
	}
	for _, rn := range st.RealNodes {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if p := byName[rn.Containerd]; p != nil && p.Running() {
			ctrAll := func(args ...string) []string {
				out, _ := run(ctx, append([]string{"ctr", "-a", rn.Socket, "-n", "k8s.io"}, args...)...)
				return strings.Fields(out)
			}
			for _, id := range ctrAll("tasks", "ls", "-q") {
				ctrAll("tasks", "kill", "-s", "SIGKILL", id)
			}
			for _, id := range ctrAll("tasks", "ls", "-q") {
				for try := 0; try < 20; try++ {
					if _, err := run(ctx, "ctr", "-a", rn.Socket, "-n", "k8s.io", "tasks", "delete", id); err == nil {
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
			for _, id := range ctrAll("containers", "ls", "-q") {
				ctrAll("containers", "delete", id)
			}
		}
		cancel()
		stop(rn.Containerd, 5*time.Second)
		// The shims outlive containerd; they are ours by their -address.
		for _, pid := range shimsOf(rn.Socket) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		stop(rn.Holder, time.Second)
		for _, cg := range rn.Cgroups {
			if err := removeCgroupTree(cg); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(st.RealNodes) > 0 && !anyLiveRealNodes(st.Prefix) {
		if err := restoreSysctls(log, nil); err != nil {
			errs = append(errs, err)
		} else {
			_ = os.Remove(sysctlSaveFile())
		}
		sweepKubeletGlobals(log)
	}
	return errs
}

// shimsOf returns the PIDs of containerd-shim processes started by the
// containerd that listens on sock.
func shimsOf(sock string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmd), "\x00")
		if len(args) == 0 || !strings.Contains(filepath.Base(args[0]), "containerd-shim") {
			continue
		}
		for i, a := range args {
			if a == "-address" && i+1 < len(args) && args[i+1] == sock {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// sweepKubeletGlobals removes the mount points the real nodes needed on the
// host (nodeBindMounts, and /run/containerd), when they are empty: what the
// kubelets wrote there went to the nodes' own directories. Another program's
// files are never touched.
func sweepKubeletGlobals(log *slog.Logger) {
	dirs := append([]string(nil), nodeBindMounts...)
	dirs = append(dirs, "/run/containerd")
	for _, d := range dirs {
		if err := os.Remove(d); err == nil {
			log.Debug("removed the empty mount point of a real node", "dir", d)
		}
	}
}

// ContainerPID returns the host PID of a running container of a real node,
// from its CRI container ID (a pod status's containerID, with or without the
// "containerd://" prefix), as the node's containerd reports it.
func (n *Node) ContainerPID(ctx context.Context, containerID string) (int, error) {
	if n.real == nil {
		return 0, fmt.Errorf("node %s is not a real node", n.Name)
	}
	id := strings.TrimPrefix(containerID, "containerd://")
	out, err := run(ctx, "ctr", "-a", n.real.rec.Socket, "-n", "k8s.io", "tasks", "ls")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == id {
			if f[2] != "RUNNING" {
				return 0, fmt.Errorf("node %s: container %s is %s", n.Name, id, f[2])
			}
			return strconv.Atoi(f[1])
		}
	}
	return 0, fmt.Errorf("node %s: no task for container %s", n.Name, id)
}
