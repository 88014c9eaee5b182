// Command demo shows Herald working on one Linux machine, with no Docker and
// no cluster: it brings the test bed up (a real kube-apiserver, 3 node
// network namespaces with kube-proxy, an FRR router, a client on the nodes'
// network and one behind the router), runs Herald's controller and one
// speaker per node with exactly the RBAC of config/rbac, configures a layer 2
// pool and a BGP pool, creates a demo web Service on each, and waits until
// both answer a curl. The bed stays up until `demo down`.
//
// With -real-nodes every node also runs containerd and a kubelet, and Herald
// is installed as in production: `make images` builds its images, which are
// imported into the nodes, config/manifests/herald.yaml is applied, and the
// Deployment and the DaemonSet start the controller and the speakers as pods;
// the web backends are pods of a Deployment too.
//
//	demo up [-bgp=true] [-real-nodes] [-json] [-state FILE]
//	demo down [-state FILE]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/heraldlb/herald/e2etest/testbed"
)

// The demo's configuration: the test bed's address plan (DESIGN.md), the
// router's AS, and a private AS for the nodes.
const (
	demoNamespace = "demo"
	nodeASN       = 64513
)

func demoConfig(bgp bool) string {
	s := `apiVersion: herald.io/v1beta1
kind: IPAddressPool
metadata: {name: demo-l2}
spec:
  addresses: ["198.18.0.200-198.18.0.219"]
---
apiVersion: herald.io/v1beta1
kind: L2Advertisement
metadata: {name: demo-l2}
spec:
  ipAddressPools: [demo-l2]
`
	if bgp {
		s += fmt.Sprintf(`---
apiVersion: herald.io/v1beta1
kind: IPAddressPool
metadata: {name: demo-bgp}
spec:
  addresses: ["203.0.113.0/28"]
  avoidBuggyIPs: true
  autoAssign: false
---
apiVersion: herald.io/v1beta1
kind: BGPPeer
metadata: {name: router}
spec:
  myASN: %d
  peerASN: %d
  peerAddress: %s
  holdTime: 9s
---
apiVersion: herald.io/v1beta1
kind: BGPAdvertisement
metadata: {name: demo-bgp}
spec:
  ipAddressPools: [demo-bgp]
`, nodeASN, testbed.RouterASN, testbed.RouterFabricIP)
	}
	return s
}

// Result is what `demo up -json` prints, and what the state file keeps.
type Result struct {
	Prefix     string `json:"prefix"`
	RunDir     string `json:"runDir"`
	Kubeconfig string `json:"kubeconfig"`
	// L2 and BGP are the Services' addresses ("" when not configured).
	L2IP  string `json:"l2IP"`
	BGPIP string `json:"bgpIP,omitempty"`
	// CurlL2 and CurlBGP are the commands that reach the Services from
	// the L2 client and from the client behind the router.
	CurlL2  []string `json:"curlL2"`
	CurlBGP []string `json:"curlBGP,omitempty"`
	// StartSeconds is the time from start to both curls answering.
	StartSeconds float64 `json:"startSeconds"`
	// RealNodes is set when Herald runs as pods on kubelets.
	RealNodes bool `json:"realNodes,omitempty"`
}

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "up":
		err = up(ctx, log, os.Args[2:])
	case "down":
		err = down(log, os.Args[2:])
	default:
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: demo up [-bgp=true] [-json] [-state FILE] | demo down [-state FILE]")
}

func defaultState() string {
	dir := os.Getenv("HERALD_CACHE")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache", "herald")
	}
	return filepath.Join(dir, "demo.json")
}

func up(ctx context.Context, log *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	withBGP := fs.Bool("bgp", true, "also peer with the router and serve a Service from a BGP pool")
	realNodes := fs.Bool("real-nodes", false, "run a kubelet on every node and install Herald from its images and config/manifests/herald.yaml")
	asJSON := fs.Bool("json", false, "print the result as JSON on stdout (for tests)")
	statePath := fs.String("state", defaultState(), "file that records the demo's bed, for `demo down`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if prev, err := readState(*statePath); err == nil {
		if _, err := os.Stat(prev.RunDir); err == nil {
			return fmt.Errorf("a demo is already up (%s); run `make demo-down` first", prev.Prefix)
		}
	}
	begin := time.Now()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()

	opts := testbed.Options{Nodes: 3, PodsPerNode: 1, Router: true, Detached: true, Logger: log}
	if *realNodes {
		images, err := buildImages(ctx, log)
		if err != nil {
			return err
		}
		opts.RealNodes, opts.Images, opts.NoCRDs = true, images, true
		log.Info("bringing the test bed up: API server, 3 nodes with kube-proxy, containerd and a kubelet, FRR router, 2 clients")
	} else {
		log.Info("bringing the test bed up: API server, 3 nodes with kube-proxy, FRR router, 2 clients")
	}
	bed, err := testbed.Up(ctx, opts)
	if err != nil {
		return err
	}
	res := &Result{Prefix: bed.Prefix, RunDir: bed.RunDir, Kubeconfig: bed.AdminKubeconfig, RealNodes: *realNodes}
	if err := writeState(*statePath, res); err != nil {
		return errors.Join(err, bed.Close())
	}
	start := run
	if *realNodes {
		start = runRealNodes
	}
	if err := start(ctx, log, bed, *withBGP, res); err != nil {
		log.Error("demo failed; the bed stays up for inspection", slog.String("logs", filepath.Join(bed.RunDir, "logs")), slog.String("teardown", "make demo-down"))
		return err
	}
	res.StartSeconds = time.Since(begin).Seconds()
	if err := writeState(*statePath, res); err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	printSummary(ctx, os.Stdout, bed, res)
	return nil
}

// run starts Herald on the bed, configures it, creates the Services and
// waits until they answer.
func run(ctx context.Context, log *slog.Logger, bed *testbed.Bed, withBGP bool, res *Result) error {
	log.Info("building Herald's controller and speaker")
	ctrl, err := bed.HeraldBinary(ctx, "controller")
	if err != nil {
		return err
	}
	spk, err := bed.HeraldBinary(ctx, "speaker")
	if err != nil {
		return err
	}
	// The controller runs in the root namespace with its ServiceAccount's
	// token, bound to config/rbac only; it creates the memberlist Secret.
	if _, err := bed.StartProcess(ctx, "", "controller", ctrl, "--kubeconfig", bed.ControllerKubeconfig,
		"--metrics-addr", "", "--health-addr", ""); err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	// One speaker per node, in the node's namespace (its host network),
	// with the speaker's ServiceAccount.
	for _, n := range bed.Nodes {
		if _, err := n.StartSpeaker(ctx, "speaker-"+n.Name, spk, "--kubeconfig", bed.SpeakerKubeconfig,
			"--metrics-addr", "127.0.0.1:7472", "--metrics-secure=false", "--health-addr", ":7473"); err != nil {
			return fmt.Errorf("speaker on %s: %w", n.Name, err)
		}
	}
	log.Info("applying the demo configuration", slog.String("l2Pool", "198.18.0.200-198.18.0.219"), slog.String("bgpPool", map[bool]string{true: "203.0.113.0/28", false: "(off)"}[withBGP]))
	if _, err := bed.ApplyYAML(ctx, []byte(demoConfig(withBGP))); err != nil {
		return err
	}

	var pods []*testbed.Pod
	for _, n := range bed.Nodes {
		pods = append(pods, n.Pods...)
	}
	specs := []testbed.ServiceSpec{{Namespace: demoNamespace, Name: "web", Pods: pods}}
	if withBGP {
		specs = append(specs, testbed.ServiceSpec{Namespace: demoNamespace, Name: "web-bgp", Pods: pods,
			Mutate: func(s *corev1.Service) {
				s.Annotations = map[string]string{"herald.io/address-pool": "demo-bgp"}
			}})
	}
	for _, spec := range specs {
		if _, err := bed.BackendService(ctx, spec); err != nil {
			return err
		}
	}
	return waitServed(ctx, log, bed, withBGP, res)
}

// waitServed waits until the web Service (and web-bgp) has an address that
// answers a curl from the L2 client (from behind the router).
func waitServed(ctx context.Context, log *slog.Logger, bed *testbed.Bed, withBGP bool, res *Result) error {
	var err error
	if res.L2IP, err = waitIP(ctx, bed, "web"); err != nil {
		return err
	}
	res.CurlL2 = curlCommand(bed.ClientL2.NS, res.L2IP)
	log.Info("web has an address; curling it from the L2 client", slog.String("ip", res.L2IP))
	if err := waitCurl(ctx, res.CurlL2); err != nil {
		return fmt.Errorf("curl from the L2 client: %w", err)
	}
	if withBGP {
		if res.BGPIP, err = waitIP(ctx, bed, "web-bgp"); err != nil {
			return err
		}
		res.CurlBGP = curlCommand(bed.ClientExt.NS, res.BGPIP)
		log.Info("web-bgp has an address; curling it from behind the router", slog.String("ip", res.BGPIP))
		if err := waitCurl(ctx, res.CurlBGP); err != nil {
			return fmt.Errorf("curl from behind the router: %w", err)
		}
	}
	return nil
}

func waitIP(ctx context.Context, bed *testbed.Bed, name string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		svc, err := bed.Client.CoreV1().Services(demoNamespace).Get(ctx, name, metav1.GetOptions{})
		if err == nil && len(svc.Status.LoadBalancer.Ingress) > 0 {
			return svc.Status.LoadBalancer.Ingress[0].IP, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("service %s/%s has no external IP after a minute", demoNamespace, name)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func curlCommand(ns testbed.NS, ip string) []string {
	return []string{"ip", "netns", "exec", ns.Name, "curl", "-sS", "--max-time", "2", "http://" + ip + "/"}
}

// waitCurl runs the command until it succeeds: the speakers may still be
// electing owners or establishing BGP sessions.
func waitCurl(ctx context.Context, argv []string) error {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	var last string
	for {
		out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
		if err == nil {
			return nil
		}
		last = strings.TrimSpace(string(out))
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: no answer within 90s (last: %s)", strings.Join(argv, " "), last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func printSummary(ctx context.Context, w io.Writer, bed *testbed.Bed, res *Result) {
	if res.RealNodes {
		fmt.Fprintf(w, "\nHerald is running as pods on 3 kubelets, installed from config/manifests/herald.yaml and the images make images built (up in %.0fs).\n\n", res.StartSeconds)
	} else {
		fmt.Fprintf(w, "\nHerald is running: a controller and 3 speakers, with the RBAC of config/rbac (up in %.0fs).\n\n", res.StartSeconds)
	}
	fmt.Fprintf(w, "export KUBECONFIG=%s\n\n", res.Kubeconfig)
	if res.RealNodes {
		fmt.Fprintf(w, "$ kubectl get pods -n %s -o wide\n", testbed.HeraldNamespace)
		kubectl(ctx, w, res.Kubeconfig, "get", "pods", "-n", testbed.HeraldNamespace, "-o", "wide")
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "$ kubectl get svc -n demo")
	if !kubectl(ctx, w, res.Kubeconfig, "get", "svc", "-n", demoNamespace) {
		printServices(ctx, w, bed)
	}
	fmt.Fprintln(w, "\nFrom the client on the nodes' network (layer 2: one node answers ARP for the IP):")
	fmt.Fprintf(w, "  %s\n", strings.Join(res.CurlL2, " "))
	if res.CurlBGP != nil {
		fmt.Fprintln(w, "From the client behind the FRR router (BGP: every node advertises the IP, ECMP):")
		fmt.Fprintf(w, "  %s\n", strings.Join(res.CurlBGP, " "))
		fmt.Fprintf(w, "  vtysh --vty_socket %s -c 'show bgp ipv4 unicast'   # the router's view\n", bed.Router.Dir)
	}
	fmt.Fprintln(w, "\nThen try:")
	fmt.Fprintln(w, "  kubectl get herald                                  # pools, advertisements, peers: Ready")
	fmt.Fprintln(w, "  kubectl get ipaddresspools                          # used and free addresses")
	fmt.Fprintln(w, "  kubectl -n herald-system get bgpsessionstates       # one BGP session per node")
	fmt.Fprintln(w, "  kubectl describe svc -n demo web                    # IPAllocated, Announcing events")
	fmt.Fprintf(w, "\n%s", bed.Summary())
	fmt.Fprintln(w, "\nTear it all down with: make demo-down")
}

// kubectl runs kubectl and copies its output to w; false when it could not.
func kubectl(ctx context.Context, w io.Writer, kubeconfig string, args ...string) bool {
	out, err := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig", kubeconfig}, args...)...).CombinedOutput()
	if err != nil {
		return false
	}
	_, _ = w.Write(out)
	return true
}

// printServices is `kubectl get svc` for machines without kubectl.
func printServices(ctx context.Context, w io.Writer, bed *testbed.Bed) {
	list, err := bed.Client.CoreV1().Services(demoNamespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		fmt.Fprintln(w, err)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tCLUSTER-IP\tEXTERNAL-IP\tPORT(S)")
	for _, s := range list.Items {
		var ext, ports []string
		for _, in := range s.Status.LoadBalancer.Ingress {
			ext = append(ext, in.IP)
		}
		for _, p := range s.Spec.Ports {
			ports = append(ports, fmt.Sprintf("%d/%s", p.Port, p.Protocol))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Name, s.Spec.Type, s.Spec.ClusterIP, strings.Join(ext, ","), strings.Join(ports, ","))
	}
	tw.Flush()
}

func down(log *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("down", flag.ContinueOnError)
	statePath := fs.String("state", defaultState(), "file that records the demo's bed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	res, err := readState(*statePath)
	if errors.Is(err, os.ErrNotExist) {
		fmt.Println("no demo is recorded in", *statePath)
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := os.Stat(res.RunDir); err == nil {
		if err := testbed.Down(log, res.RunDir); err != nil {
			return fmt.Errorf("%s: %w", res.Prefix, err)
		}
	}
	fmt.Printf("demo %s is down\n", res.Prefix)
	return os.Remove(*statePath)
}

func readState(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

func writeState(path string, r *Result) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
