// Command controller is Herald's controller: it allocates LoadBalancer IPs
// from IPAddressPools and writes them to Service status. Run two replicas
// with --leader-elect; the standby keeps warm caches.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/heraldlb/herald/internal/controller"
	"github.com/heraldlb/herald/internal/fence"
	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/internal/metrics"
	"github.com/heraldlb/herald/internal/procstat"
	"github.com/heraldlb/herald/internal/secureserve"
	"github.com/heraldlb/herald/internal/version"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "herald-controller:", err)
		os.Exit(1)
	}
}

func run() error {
	fs := flag.NewFlagSet("herald-controller", flag.ContinueOnError)
	var (
		kubeconfig    = fs.String("kubeconfig", "", "path to a kubeconfig; empty means in-cluster")
		namespace     = fs.String("namespace", envOr("HERALD_NAMESPACE", "herald-system"), "Herald's namespace (Lease, Secrets)")
		lbClass       = fs.String("lb-class", "", "serve Services whose spec.loadBalancerClass is this; empty serves Services without a class")
		metricsAddr   = fs.String("metrics-addr", ":7472", "address of the Prometheus endpoint; empty disables it")
		metricsSecure = fs.Bool("metrics-secure", true, "serve metrics over TLS to callers the API server authenticates (TokenReview) and authorizes for GET on /metrics (SubjectAccessReview); false serves plain HTTP and needs a loopback --metrics-addr")
		metricsCerts  = fs.String("metrics-cert-dir", "", "directory with tls.crt and tls.key for the metrics endpoint; empty: a self-signed certificate made at start")
		healthAddr    = fs.String("health-addr", ":7473", "address of /healthz and /readyz; empty disables them")
		leaderElect   = fs.Bool("leader-elect", false, "compete for a Lease so that only one replica allocates")
		leaseName     = fs.String("lease-name", "herald-controller", "name of the leader-election Lease")
		identity      = fs.String("identity", envOr("POD_NAME", hostname())+"_"+randomSuffix(), "this replica's name in leader election; unique per process, so a restarted replica does not mistake its predecessor's lease for its own")
		leaseDuration = fs.Duration("lease-duration", 15*time.Second, "leader-election lease duration")
		renewDeadline = fs.Duration("renew-deadline", 10*time.Second, "leader-election renew deadline")
		retryPeriod   = fs.Duration("retry-period", 2*time.Second, "leader-election retry period")
		workers       = fs.Int("workers", 64, "Services synced in parallel")
		qps           = fs.Float64("kube-api-qps", k8s.DefaultQPS, "client-side limit of API requests per second")
		burst         = fs.Int("kube-api-burst", k8s.DefaultBurst, "client-side burst of API requests")
		pprofAddr     = fs.String("pprof-addr", "", "address of Go's /debug/pprof/ profiles (heap, CPU); empty disables them")
		logLevel      = fs.String("log-level", "info", "debug, info, warn or error")
		showVersion   = fs.Bool("version", false, "print the version and exit")
	)
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *showVersion {
		fmt.Printf("herald-controller %s\n", version.Version)
		return nil
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	if *metricsAddr != "" && !*metricsSecure && !secureserve.Loopback(*metricsAddr) {
		return fmt.Errorf("--metrics-addr %s: plain HTTP (--metrics-secure=false) is only allowed on a loopback address", *metricsAddr)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	log.Info("starting", slog.String("version", version.Version), slog.String("lbClass", *lbClass), slog.Bool("leaderElect", *leaderElect))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	restCfg, err := k8s.RESTConfig(*kubeconfig, float32(*qps), *burst, "herald-controller/"+version.Version)
	if err != nil {
		return err
	}
	clients, err := k8s.NewClients(restCfg)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	recorder := k8s.NewRecorder(ctx, clients, "herald-controller", *identity, log)
	// Writes stop RenewDeadline after the last renewal was sent: when
	// client-go would give up anyway, and LeaseDuration-RenewDeadline before
	// another replica can take over.
	f := fence.Open()
	if *leaderElect {
		if *renewDeadline >= *leaseDuration {
			return fmt.Errorf("--renew-deadline (%s) must be shorter than --lease-duration (%s)", *renewDeadline, *leaseDuration)
		}
		f = fence.New(*renewDeadline)
	}
	c, err := controller.New(ctx, clients, recorder, controller.Options{
		LBClass: *lbClass, Namespace: *namespace, Workers: *workers, Logger: log, Metrics: metrics.NewController(reg), Fence: f,
	})
	if err != nil {
		return err
	}
	if *metricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		err := secureserve.Serve(ctx, secureserve.Options{
			Addr: *metricsAddr, Secure: *metricsSecure, CertDir: *metricsCerts, Client: clients.Kube, Logger: log,
		}, mux)
		if err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
	}
	health := http.NewServeMux()
	health.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = fmt.Fprintln(w, "ok") })
	health.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		// A standby with synced caches is ready: it can take over at once.
		_, _ = fmt.Fprintln(w, "ok")
	})
	serve(ctx, log, *healthAddr, health, "")
	serve(ctx, log, *pprofAddr, procstat.PprofHandler(), "")

	if err := c.Start(ctx); err != nil {
		return err
	}
	if !*leaderElect {
		c.Lead(ctx)
		return nil
	}
	return k8s.RunAsLeader(ctx, clients, k8s.LeaderConfig{
		Namespace: *namespace, Name: *leaseName, Identity: *identity,
		LeaseDuration: *leaseDuration, RenewDeadline: *renewDeadline, RetryPeriod: *retryPeriod, Fence: f,
	}, log, c.Lead)
}

// serve runs an HTTP server on addr until ctx ends; path, when set, mounts
// h there, else h is the whole mux.
func serve(ctx context.Context, log *slog.Logger, addr string, h http.Handler, path string) {
	if addr == "" {
		return
	}
	if path != "" {
		mux := http.NewServeMux()
		mux.Handle(path, h)
		h = mux
	}
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", slog.String("addr", addr), slog.Any("error", err))
		}
	}()
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "herald-controller"
	}
	return h
}
