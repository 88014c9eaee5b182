package testbed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// ProxyMode is kube-proxy's data-plane mode.
type ProxyMode string

// The kube-proxy modes the bed supports.
const (
	ProxyIPTables ProxyMode = "iptables"
	ProxyNFTables ProxyMode = "nftables"
)

// Options says what to build. The zero value is one node with one pod, an
// L2 client, no router, IPv4 only, kube-proxy in iptables mode.
type Options struct {
	// Nodes is the number of node namespaces (default 1).
	Nodes int
	// PodsPerNode is the number of pod namespaces per node (default 1).
	PodsPerNode int
	// Router adds the FRR router and the client behind it.
	Router bool
	// DualStack gives nodes, pods, router, clients and the service CIDR
	// IPv6 addresses too.
	DualStack bool
	// ProxyMode selects kube-proxy's mode (default iptables).
	ProxyMode ProxyMode
	// NoKubeProxy starts no kube-proxy (control-plane-only tests).
	NoKubeProxy bool
	// NoCRDs skips applying config/crd/bases.
	NoCRDs bool
	// RealNodes runs containerd and a kubelet in every node namespace, and
	// kube-controller-manager and kube-scheduler in the control plane, so
	// that Deployments and DaemonSets create and start real pods (built
	// with `make -C e2etest kube-nodes`). Slower to start than the default
	// process-based bed; see realnode.go. The cluster is clean: no
	// herald-system namespace, RBAC or Herald identities (Controller and
	// Speaker stay nil) until the test installs them.
	RealNodes bool
	// Images are OCI image archives (for example `make images` output)
	// imported into every real node's containerd, next to the bed's pause
	// and agnhost images. Nothing is ever pulled.
	Images []string
	// RepoRoot is the main module's directory (default: found above the
	// working directory).
	RepoRoot string
	// Detached makes the bed outlive the program that started it: the CLI's
	// `up`. Processes get their own session and no parent-death signal.
	Detached bool
	// Logger receives progress; default discards.
	Logger *slog.Logger
}

// Bed is a running test bed.
type Bed struct {
	// Prefix is this run's unique name prefix, for example "hl4242a".
	Prefix string
	// RunDir holds the state file, kubeconfigs, secrets and logs.
	RunDir string
	// Log is the bed's logger.
	Log *slog.Logger

	// APIServerURL is the API server's address (on the transit link).
	APIServerURL string
	// Admin, Controller and Speaker are client configs for the admin
	// (system:masters) and for Herald's ServiceAccounts, which are bound
	// only to the roles of config/rbac.
	Admin, Controller, Speaker *rest.Config
	// Kubeconfig files for the same identities.
	AdminKubeconfig, ControllerKubeconfig, SpeakerKubeconfig string
	// Client and Dynamic are admin clients.
	Client  kubernetes.Interface
	Dynamic dynamic.Interface

	// Fabric is the namespace that holds the L2 bridge "br0".
	Fabric NS
	// Nodes are the node namespaces, Nodes[0] is node1.
	Nodes []*Node
	// Router is the FRR router, nil without Options.Router.
	Router *Router
	// ClientL2 is the client on the L2 segment; ClientExt the client behind
	// the router (nil without Options.Router).
	ClientL2, ClientExt *Client

	// StartDuration is how long Up took.
	StartDuration time.Duration

	opts       Options
	slot       int
	apiAddr    netip.Addr
	fabricAddr netip.Addr
	etcdAddr   netip.Addr
	caPEM      []byte
	adminToken string
	proxyToken string
	mapper     *restmapper.DeferredDiscoveryRESTMapper
	etcd       *Process
	apiserver  *Process
	podserver  string
	nodeTokens map[string]string

	mu        sync.Mutex
	state     State
	procs     []*Process
	closeOnce sync.Once
	closeErr  error
	closed    chan struct{}

	buildMu sync.Mutex
	built   map[string]string
}

// Client is a client namespace.
type Client struct {
	NS
	IP, IP6 netip.Addr
}

// Start builds a bed for a test, and tears it down when the test ends (and
// on SIGINT/SIGTERM). It fails the test if the bed cannot be built.
func Start(t testing.TB, opts Options) *Bed {
	t.Helper()
	if opts.Logger == nil {
		level := slog.LevelInfo
		if os.Getenv("HERALD_TESTBED_DEBUG") != "" {
			level = slog.LevelDebug
		}
		opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
	}
	timeout := 3 * time.Minute
	if opts.RealNodes {
		// Images to build and import, kubelets to start: on 2 busy cores
		// this takes minutes.
		timeout = 8 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	b, err := Up(ctx, opts)
	if b != nil {
		t.Cleanup(func() {
			if t.Failed() {
				b.dumpLogs(func(s string) { t.Log(s) })
			}
			if err := b.Close(); err != nil {
				t.Errorf("test bed teardown: %v", err)
			}
		})
	}
	if err != nil {
		t.Fatalf("test bed: %v", err)
	}
	// A test that hits go test's -timeout panics without running cleanups;
	// tear the bed down just before that happens.
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if dl, ok := d.Deadline(); ok {
			go func() {
				timer := time.NewTimer(time.Until(dl) - 10*time.Second)
				defer timer.Stop()
				select {
				case <-timer.C:
					b.Log.Error("test deadline near: tearing the test bed down", "prefix", b.Prefix)
					_ = b.Close()
				case <-b.closed:
				}
			}()
		}
	}
	t.Logf("test bed %s up in %v (%d nodes, router=%v, dual-stack=%v, kube-proxy=%s)", b.Prefix, b.StartDuration.Round(time.Millisecond), len(b.Nodes), opts.Router, opts.DualStack, b.opts.ProxyMode)
	return b
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Up builds a bed. On error it returns the partial bed too (when one was
// begun), so that the caller can Close it; Up has already tried to.
func Up(ctx context.Context, opts Options) (*Bed, error) {
	begin := time.Now()
	if os.Geteuid() != 0 {
		return nil, errors.New("the test bed needs root (network namespaces, veths, iptables)")
	}
	if opts.Nodes <= 0 {
		opts.Nodes = 1
	}
	if opts.PodsPerNode <= 0 {
		opts.PodsPerNode = 1
	}
	if opts.ProxyMode == "" {
		opts.ProxyMode = ProxyIPTables
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.RepoRoot == "" {
		wd, _ := os.Getwd()
		root, err := FindRepoRoot(wd)
		if err != nil {
			return nil, err
		}
		opts.RepoRoot = root
	}
	if opts.Nodes > 60 || opts.PodsPerNode > 200 {
		return nil, fmt.Errorf("at most 60 nodes and 200 pods per node fit the address plan")
	}
	log := opts.Logger
	if err := Sweep(ctx, log); err != nil {
		log.Warn("sweep of stale test beds incomplete", "err", err)
	}
	b := &Bed{Log: log, opts: opts, closed: make(chan struct{}), built: map[string]string{}}
	if err := b.claim(ctx); err != nil {
		return nil, err
	}
	if !opts.Detached {
		go b.closeOnSignal()
	}
	if err := b.build(ctx); err != nil {
		if cerr := b.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("teardown: %w", cerr))
		}
		return b, err
	}
	b.StartDuration = time.Since(begin)
	log.Info("test bed up", "prefix", b.Prefix, "duration", b.StartDuration.Round(time.Millisecond), "kubeconfig", b.AdminKubeconfig)
	return b, nil
}

// claim picks the run prefix and the transit slot, under a lock so that
// concurrent beds never pick the same ones, and creates the run directory and
// the root end of the transit link.
func (b *Bed) claim(ctx context.Context) error {
	base := RunBase()
	if err := os.MkdirAll(base, 0o755); err != nil {
		return err
	}
	_ = os.Chmod(base, 0o755)
	lock, err := os.OpenFile(filepath.Join(base, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN)

	used, err := CheckRootRoutes(ctx)
	if err != nil {
		return err
	}
	b.slot = -1
	for s := 0; s < maxSlots; s++ {
		free := true
		for _, u := range used {
			if u.Overlaps(transitPrefix(s)) {
				free = false
			}
		}
		if free {
			b.slot = s
			break
		}
	}
	if b.slot < 0 {
		return fmt.Errorf("all %d transit links of %s are in use by other test beds", maxSlots, TransitPrefix)
	}
	b.apiAddr, b.fabricAddr = transitAddrs(b.slot)
	b.etcdAddr = netip.AddrFrom4([4]byte{127, 18, 254, byte(4*b.slot + 1)})

	for c := 'a'; c <= 'z'; c++ {
		p := fmt.Sprintf("hl%d%c", os.Getpid(), c)
		if err := os.Mkdir(filepath.Join(base, p), 0o755); err == nil {
			b.Prefix = p
			break
		} else if !os.IsExist(err) {
			return err
		}
	}
	if b.Prefix == "" {
		return errors.New("no free run prefix for this process")
	}
	b.RunDir = filepath.Join(base, b.Prefix)
	for _, d := range []string{"logs", "bin", "etc"} {
		if err := os.MkdirAll(filepath.Join(b.RunDir, d), 0o755); err != nil {
			return err
		}
	}
	ownerStart, _ := procStartTime(os.Getpid())
	b.state = State{
		Prefix: b.Prefix, RunDir: b.RunDir, OwnerPID: os.Getpid(), OwnerStart: ownerStart,
		Detached: b.opts.Detached, Created: time.Now(), Slot: b.slot,
	}
	if err := b.saveState(); err != nil {
		return err
	}
	// The root end of the transit link is created under the lock, so that
	// the next bed's route check sees this slot taken.
	b.Fabric = b.addNS("fabric")
	if _, err := run(ctx, "ip", "netns", "add", b.Fabric.Name); err != nil {
		return err
	}
	rootLink := b.Prefix + "-fab"
	b.mu.Lock()
	b.state.RootLinks = append(b.state.RootLinks, rootLink)
	b.mu.Unlock()
	if err := b.saveState(); err != nil {
		return err
	}
	for _, argv := range [][]string{
		{"ip", "link", "add", rootLink, "type", "veth", "peer", "name", "root", "netns", b.Fabric.Name},
		{"sysctl", "-q", "-w", "net.ipv6.conf." + rootLink + ".disable_ipv6=1"},
		{"ip", "addr", "add", netip.PrefixFrom(b.apiAddr, 30).String(), "dev", rootLink},
		{"ip", "link", "set", rootLink, "up"},
	} {
		if _, err := run(ctx, argv...); err != nil {
			return err
		}
	}
	return nil
}

// build creates everything but the transit link.
func (b *Bed) build(ctx context.Context) error {
	begin := time.Now()
	phase := func(name string) {
		b.Log.Debug("ready", "part", name, "after", time.Since(begin).Round(time.Millisecond))
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := b.startEtcd(gctx); err != nil {
			return fmt.Errorf("etcd: %w", err)
		}
		phase("etcd")
		if err := b.startAPIServer(gctx); err != nil {
			return fmt.Errorf("kube-apiserver: %w", err)
		}
		phase("kube-apiserver")
		// A real-nodes bed is a clean cluster: Herald's namespace, RBAC and
		// identities come from what the test installs (manifest, chart).
		if !b.opts.RealNodes {
			if err := b.setupIdentities(gctx); err != nil {
				return fmt.Errorf("identities: %w", err)
			}
			phase("rbac and identities")
		}
		if !b.opts.NoCRDs {
			if _, err := b.ApplyCRDs(gctx); err != nil {
				return err
			}
			phase("CRDs")
		}
		return nil
	})
	g.Go(func() error {
		out := filepath.Join(b.RunDir, "bin", "podserver")
		if err := goBuild(gctx, filepath.Join(b.opts.RepoRoot, "e2etest"), out, "./cmd/podserver"); err != nil {
			return fmt.Errorf("podserver: %w", err)
		}
		b.podserver = out
		phase("podserver build")
		return nil
	})
	g.Go(func() error {
		if err := b.buildNetwork(gctx); err != nil {
			return err
		}
		phase("network")
		return nil
	})
	var images []string
	if b.opts.RealNodes {
		g.Go(func() error {
			imgs, err := b.buildInfraImages(gctx)
			if err != nil {
				return fmt.Errorf("infra images: %w", err)
			}
			images = append(imgs, b.opts.Images...)
			phase("infra images")
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if b.opts.RealNodes {
		if err := b.saveSysctls(); err != nil {
			return fmt.Errorf("save sysctls: %w", err)
		}
		if err := b.startControllers(ctx); err != nil {
			return err
		}
		phase("kube-controller-manager, kube-scheduler")
	}
	b.mu.Lock()
	b.state.APIServer = b.APIServerURL
	b.state.Kubeconfig = b.AdminKubeconfig
	b.mu.Unlock()
	if err := b.saveState(); err != nil {
		return err
	}

	g, gctx = errgroup.WithContext(ctx)
	for _, n := range b.Nodes {
		g.Go(func() error {
			if err := n.register(gctx); err != nil {
				return err
			}
			for _, p := range n.Pods {
				if err := p.start(gctx); err != nil {
					return err
				}
			}
			phase(n.Name + " registered, pods serving")
			if b.opts.NoKubeProxy {
				return nil
			}
			if err := n.startKubeProxy(gctx); err != nil {
				return err
			}
			phase(n.Name + " kube-proxy")
			if b.opts.RealNodes {
				if err := n.startRealNode(gctx, images, b.nodeTokens[n.Name]); err != nil {
					return fmt.Errorf("node %s: %w", n.Name, err)
				}
				phase(n.Name + " kubelet Ready")
			}
			return nil
		})
	}
	if b.Router != nil {
		g.Go(func() error {
			if err := b.Router.start(gctx); err != nil {
				return err
			}
			phase("router")
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if b.opts.RealNodes {
		// The kubelets have set the kernel's panic settings; put the
		// machine's back now (overcommit goes back at teardown).
		if err := restoreSysctls(b.Log, kubeletPanicSysctls); err != nil {
			return err
		}
	}
	return nil
}

// addNS names a namespace of this bed and records it, before it is created.
func (b *Bed) addNS(suffix string) NS {
	n := NS{Name: b.Prefix + "-" + suffix}
	b.mu.Lock()
	b.state.Namespaces = append(b.state.Namespaces, n.Name)
	b.mu.Unlock()
	return n
}

func (b *Bed) addExtraDir(dir string) {
	b.mu.Lock()
	b.state.ExtraDirs = append(b.state.ExtraDirs, dir)
	b.mu.Unlock()
	_ = b.saveState()
}

func (b *Bed) saveState() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state.Processes = b.state.Processes[:0]
	for _, p := range b.procs {
		b.state.Processes = append(b.state.Processes, p.record())
	}
	return writeState(&b.state)
}

// startProcess starts and records a process of the bed.
func (b *Bed) startProcess(ctx context.Context, ns NSName, name, bin string, args ...string) (*Process, error) {
	return b.startProcessEnv(ctx, ns, name, nil, bin, args...)
}

// startProcessEnv is startProcess with extra environment variables.
func (b *Bed) startProcessEnv(_ context.Context, ns NSName, name string, env []string, bin string, args ...string) (*Process, error) {
	p, err := startProcess(string(ns), name, filepath.Join(b.RunDir, "logs"), b.opts.Detached, env, append([]string{bin}, args...)...)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.procs = append(b.procs, p)
	b.mu.Unlock()
	if err := b.saveState(); err != nil {
		return p, err
	}
	b.Log.Debug("started", "process", name, "pid", p.PID, "netns", ns)
	return p, nil
}

// NSName is a namespace name; "" is the root namespace.
type NSName string

// Processes returns the processes the bed started, in start order.
func (b *Bed) Processes() []*Process {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*Process(nil), b.procs...)
}

// State returns a copy of what the bed records in its state file.
func (b *Bed) State() State {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.state
	s.Namespaces = append([]string(nil), s.Namespaces...)
	s.RootLinks = append([]string(nil), s.RootLinks...)
	s.Processes = append([]ProcessRecord(nil), s.Processes...)
	return s
}

func (b *Bed) closeOnSignal() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(ch)
	select {
	case sig := <-ch:
		b.Log.Warn("signal: tearing the test bed down", "signal", sig, "prefix", b.Prefix)
		if err := b.Close(); err != nil {
			b.Log.Error("teardown", "err", err)
		}
		os.Exit(1)
	case <-b.closed:
	}
}

// Close stops every process the bed started (by PID), deletes its
// namespaces and links, and removes its run directory. It is idempotent.
func (b *Bed) Close() error {
	b.closeOnce.Do(func() {
		defer close(b.closed)
		b.closeErr = teardown(b.Log, b.State(), b.Processes())
	})
	return b.closeErr
}

// Down tears down the bed recorded in the state file of runDir: the CLI's
// `down`, for a bed started by another process.
func Down(log *slog.Logger, runDir string) error {
	st, err := ReadState(runDir)
	if err != nil {
		return err
	}
	var procs []*Process
	for _, r := range st.Processes {
		procs = append(procs, processFromRecord(r))
	}
	return teardown(log, *st, procs)
}

func teardown(log *slog.Logger, st State, procs []*Process) error {
	begin := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var errs []error
	// Everything but etcd and the API server first, in parallel, so that
	// kube-proxy and Herald's binaries can still talk to the API server
	// while they shut down.
	stop := func(ps []*Process, grace time.Duration) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, p := range ps {
			wg.Go(func() {
				if err := p.Stop(grace); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
	var first, last []*Process
	for _, p := range procs {
		if p.NS == "" {
			last = append(last, p)
		} else {
			first = append(first, p)
		}
	}
	errs = append(errs, teardownRealNodes(log, st, procs)...)
	stop(first, 5*time.Second)
	stopped := time.Since(begin)
	// The API server before etcd: without etcd it hangs in shutdown. Its
	// graceful shutdown buys nothing here, so it gets little time.
	for i := len(last) - 1; i >= 0; i-- {
		stop(last[i:i+1], 2*time.Second)
	}
	log.Debug("processes stopped", "nodeProcesses", stopped.Round(time.Millisecond), "all", time.Since(begin).Round(time.Millisecond))
	// Each namespace is looked up by its own bind mount, not in `ip netns
	// list`, which fails as a whole when any namespace of the machine is
	// in a transient state: an error there must not make teardown skip its
	// own namespaces and then report success.
	names := append([]string(nil), st.Namespaces...)
	sort.Sort(sort.Reverse(sort.StringSlice(names)))
	for _, n := range names {
		if !netnsExists(n) {
			continue
		}
		if _, err := run(ctx, "ip", "netns", "del", n); err != nil {
			errs = append(errs, err)
		}
	}
	// Verify: nothing of this bed may be left.
	for _, n := range names {
		if netnsExists(n) {
			errs = append(errs, fmt.Errorf("network namespace %s is still there after teardown", n))
		}
	}
	for _, l := range st.RootLinks {
		if linkExists(ctx, l) {
			if _, err := run(ctx, "ip", "link", "del", l); err != nil && linkExists(ctx, l) {
				errs = append(errs, err)
			}
		}
		if linkExists(ctx, l) {
			errs = append(errs, fmt.Errorf("root link %s is still there after teardown", l))
		}
	}
	for _, d := range st.ExtraDirs {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 && st.RunDir != "" {
		if err := os.RemoveAll(st.RunDir); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		log.Error("test bed teardown incomplete; the next run's sweep retries", "prefix", st.Prefix, "err", errors.Join(errs...))
	} else {
		log.Info("test bed torn down", "prefix", st.Prefix, "duration", time.Since(begin).Round(time.Millisecond))
	}
	return errors.Join(errs...)
}

// netnsDir is where `ip netns` keeps the bind mounts of named namespaces.
const netnsDir = "/run/netns"

// netnsExists reports whether the named network namespace exists: its bind
// mount under /run/netns, which is where `ip netns` keeps it.
func netnsExists(name string) bool {
	_, err := os.Stat(filepath.Join(netnsDir, name))
	return err == nil
}

// dumpLogs writes the tail of every process log, for failed tests.
func (b *Bed) dumpLogs(logf func(string)) {
	for _, p := range b.Processes() {
		data, err := os.ReadFile(p.Log)
		if err != nil {
			continue
		}
		logf(fmt.Sprintf("--- last lines of %s (pid %d, %s) ---\n%s", p.Name, p.PID, p.Log, strings.ReplaceAll(lastLines(string(data), 25), " | ", "\n")))
	}
}
