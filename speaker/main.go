// Command speaker is Herald's speaker: it makes the network deliver the
// load-balancer IPs its node owns (layer 2 mode: ARP and NDP; BGP mode: an
// embedded GoBGP server that advertises them to the BGPPeers). See
// DESIGN.md for what it does; the logic is in internal/speaker.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/heraldlb/herald/internal/config"
	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/internal/layer2"
	"github.com/heraldlb/herald/internal/membership"
	"github.com/heraldlb/herald/internal/procstat"
	"github.com/heraldlb/herald/internal/secureserve"
	"github.com/heraldlb/herald/internal/speaker"
	"github.com/heraldlb/herald/internal/version"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "herald-speaker:", err)
		os.Exit(1)
	}
}

type flags struct {
	kubeconfig, nodeName, podName, namespace, lbClass string
	bindAddr, advertiseAddr                           string
	bindPort                                          int
	secretName, peerSelector                          string
	timings                                           membership.Timings
	garpCount                                         int
	garpInterval, refresh                             time.Duration
	metricsAddr, healthAddr, logLevel                 string
	pprofAddr                                         string
	metricsSecure                                     bool
	metricsCertDir                                    string
	showVersion                                       bool
	bgpDisabled                                       bool
	bgpListenPort                                     uint
	bgpStatusInterval, bgpShutdownTimeout             time.Duration
	bgpMaxReceivedPrefixes                            uint
	ignoreExcludeLB                                   bool
	excludeInterfaces                                 string
}

func parseFlags() (*flags, error) {
	f := &flags{}
	fs := flag.NewFlagSet("speaker", flag.ContinueOnError)
	d := membership.DefaultTimings()
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file; empty uses the in-cluster configuration")
	fs.StringVar(&f.nodeName, "node-name", os.Getenv("NODE_NAME"), "this node's name (default $NODE_NAME)")
	fs.StringVar(&f.podName, "pod-name", os.Getenv("POD_NAME"), "this speaker's pod (default $POD_NAME): on SIGTERM, its DaemonSet tells an uninstall (BGP withdraws) from a restart (graceful restart keeps the routes)")
	fs.StringVar(&f.namespace, "namespace", "herald-system", "the speaker's namespace (memberlist Secret, speaker pods)")
	fs.StringVar(&f.lbClass, "lb-class", "", "loadBalancerClass to serve; empty serves Services without a class")
	fs.StringVar(&f.bindAddr, "memberlist-bind-addr", "", "memberlist listen address (default: the node's InternalIP)")
	fs.StringVar(&f.advertiseAddr, "memberlist-advertise-addr", "", "memberlist address given to the others (default: the node's InternalIP)")
	fs.IntVar(&f.bindPort, "memberlist-port", 7946, "memberlist port (UDP and TCP), the same on every node")
	fs.StringVar(&f.secretName, "memberlist-secret-name", "herald-memberlist", `Secret (key "secretkey") the memberlist key is derived from; empty disables encryption`)
	fs.StringVar(&f.peerSelector, "peer-pod-selector", "", "label selector of the speaker pods in --namespace whose IPs are the memberlist peers; empty uses every Node's InternalIP")
	fs.DurationVar(&f.timings.ProbeInterval, "memberlist-probe-interval", d.ProbeInterval, "memberlist probe interval")
	fs.DurationVar(&f.timings.ProbeTimeout, "memberlist-probe-timeout", d.ProbeTimeout, "memberlist direct probe timeout")
	fs.IntVar(&f.timings.SuspicionMult, "memberlist-suspicion-mult", d.SuspicionMult, "memberlist suspicion timeout multiplier; 3 or more waits for confirmations from other members (Lifeguard): slower detection in small clusters, more tolerance of starved nodes (docs/scale.md)")
	fs.IntVar(&f.timings.SuspicionMaxTimeoutMult, "memberlist-suspicion-max-timeout-mult", d.SuspicionMaxTimeoutMult, "with --memberlist-suspicion-mult 3 or more: how much longer an unconfirmed suspicion lasts than a confirmed one")
	fs.IntVar(&f.timings.AwarenessMaxMultiplier, "memberlist-awareness-max-mult", d.AwarenessMaxMultiplier, "how much a member that sees itself as slow (missed acks) stretches its own probe timeouts")
	fs.DurationVar(&f.timings.GossipInterval, "memberlist-gossip-interval", d.GossipInterval, "memberlist gossip interval")
	fs.DurationVar(&f.timings.PushPullInterval, "memberlist-push-pull-interval", d.PushPullInterval, "memberlist full state sync interval")
	fs.IntVar(&f.garpCount, "gratuitous-count", 3, "gratuitous ARP / unsolicited NA packets sent on takeover; negative sends none")
	fs.DurationVar(&f.garpInterval, "gratuitous-interval", 250*time.Millisecond, "time between gratuitous packets")
	fs.DurationVar(&f.refresh, "gratuitous-refresh", 0, "re-send a gratuitous packet per owned IP at this interval; 0 disables")
	fs.BoolVar(&f.bgpDisabled, "disable-bgp", false, "never start the embedded BGP server, even if BGPPeers select this node")
	fs.UintVar(&f.bgpListenPort, "bgp-listen-port", 0, "accept BGP connections on this TCP port, from configured peers only (needed by BGPPeers with passive: true; above 1023, e.g. 1790, needs no capability); 0 only dials out (so the node can run Calico or kube-router on 179)")
	fs.DurationVar(&f.bgpStatusInterval, "bgp-status-interval", 10*time.Second, "refresh of the BGPSessionState objects (counters); state changes are written at once")
	fs.DurationVar(&f.bgpShutdownTimeout, "bgp-shutdown-timeout", 3*time.Second, "on SIGTERM, how long to wait for the BGP withdrawals to be sent")
	fs.UintVar(&f.bgpMaxReceivedPrefixes, "bgp-max-received-prefixes", 200000, "close a BGP session whose router sends more prefixes than this, per family (nothing is imported; this bounds the memory a router can take)")
	fs.BoolVar(&f.ignoreExcludeLB, "ignore-exclude-lb", false, "let nodes labelled node.kubernetes.io/exclude-from-external-load-balancers announce (single-node and control-plane-only clusters); set it alike on every speaker")
	fs.StringVar(&f.excludeInterfaces, "exclude-interfaces", strings.Join(config.DefaultExcludedInterfaces, ","),
		"comma-separated interface names or glob patterns never answered on (CNI bridges and virtual links); empty excludes none")
	fs.StringVar(&f.metricsAddr, "metrics-addr", ":7472", "address of the Prometheus metrics endpoint; empty disables")
	fs.BoolVar(&f.metricsSecure, "metrics-secure", true, "serve metrics over TLS to callers the API server authenticates (TokenReview) and authorizes for GET on /metrics (SubjectAccessReview); false serves plain HTTP and needs a loopback --metrics-addr")
	fs.StringVar(&f.metricsCertDir, "metrics-cert-dir", "", "directory with tls.crt and tls.key for the metrics endpoint; empty: a self-signed certificate made at start")
	fs.StringVar(&f.healthAddr, "health-addr", ":7473", "address of /healthz and /readyz; empty disables")
	fs.StringVar(&f.pprofAddr, "pprof-addr", "", "address of Go's /debug/pprof/ profiles (heap, CPU); empty disables")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.BoolVar(&f.showVersion, "version", false, "print the version and exit")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return nil, err
	}
	return f, nil
}

func run() error {
	f, err := parseFlags()
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		os.Exit(2)
	}
	if f.showVersion {
		fmt.Printf("herald-speaker %s\n", version.Version)
		return nil
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level})).
		With(slog.String("node", f.nodeName))
	if f.bgpListenPort > 65535 {
		return fmt.Errorf("--bgp-listen-port %d: not a port", f.bgpListenPort)
	}
	if f.nodeName == "" {
		return errors.New("--node-name (or $NODE_NAME) is required")
	}
	if f.metricsAddr != "" && !f.metricsSecure && !secureserve.Loopback(f.metricsAddr) {
		return fmt.Errorf("--metrics-addr %s: plain HTTP (--metrics-secure=false) is only allowed on a loopback address", f.metricsAddr)
	}
	var excludeIfaces []string
	for _, p := range strings.Split(f.excludeInterfaces, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if err := config.ValidInterfacePattern(p); err != nil {
			return fmt.Errorf("--exclude-interfaces: %w", err)
		}
		excludeIfaces = append(excludeIfaces, p)
	}
	var peerSel labels.Selector
	if f.peerSelector != "" {
		if peerSel, err = labels.Parse(f.peerSelector); err != nil {
			return fmt.Errorf("--peer-pod-selector: %w", err)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	rc, err := k8s.RESTConfig(f.kubeconfig, k8s.DefaultQPS, k8s.DefaultBurst, "herald-speaker/"+version.Version)
	if err != nil {
		return err
	}
	clients, err := k8s.NewClients(rc)
	if err != nil {
		return err
	}
	// Events are written until the process ends, not until SIGTERM, so that
	// the last ones go out.
	recCtx, stopRec := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRec()
	rec := k8s.NewRecorder(recCtx, clients, "herald-speaker", f.nodeName, log)

	sp, err := speaker.New(speaker.Config{
		NodeName:  f.nodeName,
		Namespace: f.namespace,
		PodName:   f.podName,
		LBClass:   f.lbClass,
		Clients:   clients,
		Recorder:  rec,
		Membership: membership.Config{
			BindAddr:      f.bindAddr,
			BindPort:      f.bindPort,
			AdvertiseAddr: f.advertiseAddr,
			Timings:       f.timings,
		},
		SecretName:        f.secretName,
		PeerSelector:      peerSel,
		IgnoreExcludeLB:   f.ignoreExcludeLB,
		ExcludeInterfaces: excludeIfaces,
		Layer2: layer2.Options{
			GratuitousCount:    f.garpCount,
			GratuitousInterval: f.garpInterval,
			RefreshInterval:    f.refresh,
		},
		BGP: speaker.BGPConfig{
			Disabled:            f.bgpDisabled,
			ListenPort:          uint16(f.bgpListenPort),
			StatusInterval:      f.bgpStatusInterval,
			ShutdownTimeout:     f.bgpShutdownTimeout,
			MaxReceivedPrefixes: uint32(min(f.bgpMaxReceivedPrefixes, math.MaxUint32)),
		},
		Logger: log,
	})
	if err != nil {
		return err
	}

	srvCtx, stopServers := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServers()
	if f.metricsAddr != "" {
		reg := prometheus.NewRegistry()
		reg.MustRegister(speaker.NewCollector(sp), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		err := secureserve.Serve(srvCtx, secureserve.Options{
			Addr: f.metricsAddr, Secure: f.metricsSecure, CertDir: f.metricsCertDir, Client: clients.Kube, Logger: log,
		}, mux)
		if err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
	}
	if f.healthAddr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = fmt.Fprintln(w, "ok") })
		mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
			if !sp.Ready() {
				http.Error(w, "not ready", http.StatusServiceUnavailable)
				return
			}
			_, _ = fmt.Fprintln(w, "ok")
		})
		if err := serve(srvCtx, f.healthAddr, mux, log); err != nil {
			return fmt.Errorf("--health-addr: %w", err)
		}
	}

	if f.pprofAddr != "" {
		if err := serve(srvCtx, f.pprofAddr, procstat.PprofHandler(), log); err != nil {
			return fmt.Errorf("--pprof-addr: %w", err)
		}
	}

	log.Info("starting", slog.String("version", version.Version))
	err = sp.Run(ctx)
	log.Info("exiting")
	return err
}

// serve listens on addr at once (so a busy port fails the start) and
// serves h until ctx ends.
func serve(ctx context.Context, addr string, h http.Handler, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", slog.String("addr", addr), slog.Any("error", err))
		}
	}()
	context.AfterFunc(ctx, func() { _ = srv.Close() })
	return nil
}
