// Command testbed brings Herald's test bed up for a person and leaves it
// running, shows what runs, and tears it down again by the PIDs it recorded.
//
//	testbed up [-nodes 3] [-pods 1] [-router] [-dual-stack] [-proxy-mode iptables|nftables]
//	testbed status
//	testbed down [prefix ...]
//	testbed sweep
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/heraldlb/herald/e2etest/testbed"
)

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
	case "status":
		err = status()
	case "sweep":
		err = testbed.Sweep(ctx, log)
	default:
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "testbed %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: testbed up [-nodes N] [-pods N] [-router] [-dual-stack] [-proxy-mode iptables|nftables] [-real-nodes] [-image FILE.tar ...] | status | down [prefix ...] | sweep")
}

func up(ctx context.Context, log *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	nodes := fs.Int("nodes", 3, "number of nodes")
	pods := fs.Int("pods", 1, "pods per node")
	router := fs.Bool("router", true, "add the FRR router and the client behind it")
	dual := fs.Bool("dual-stack", false, "IPv6 addresses too")
	mode := fs.String("proxy-mode", "iptables", "kube-proxy mode: iptables or nftables")
	noCRDs := fs.Bool("no-crds", false, "do not apply config/crd/bases")
	realNodes := fs.Bool("real-nodes", false, "run containerd and a kubelet in every node, and kube-controller-manager and kube-scheduler")
	var images imageList
	fs.Var(&images, "image", "OCI image archive to import into every real node (repeatable; for example bin/images/herald-controller.tar)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	b, err := testbed.Up(ctx, testbed.Options{
		Nodes: *nodes, PodsPerNode: *pods, Router: *router, DualStack: *dual,
		ProxyMode: testbed.ProxyMode(*mode), NoCRDs: *noCRDs, Detached: true, Logger: log,
		RealNodes: *realNodes, Images: images,
	})
	if err != nil {
		return err
	}
	fmt.Print(b.Summary())
	fmt.Printf("tear down with: make -C e2etest down   (or: testbed down %s)\n", b.Prefix)
	return nil
}

type imageList []string

func (l *imageList) String() string     { return strings.Join(*l, ",") }
func (l *imageList) Set(v string) error { *l = append(*l, v); return nil }

func down(log *slog.Logger, prefixes []string) error {
	states, err := testbed.ListStates()
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, p := range prefixes {
		want[p] = true
	}
	n := 0
	var errs []error
	for _, st := range states {
		if len(want) > 0 && !want[st.Prefix] || len(want) == 0 && !st.Detached {
			continue
		}
		n++
		if err := testbed.Down(log, st.RunDir); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", st.Prefix, err))
		}
	}
	if n == 0 {
		fmt.Println("no test bed started with `testbed up` is recorded under", testbed.RunBase())
	}
	if len(errs) > 0 {
		return fmt.Errorf("%v", errs)
	}
	return nil
}

func status() error {
	states, err := testbed.ListStates()
	if err != nil {
		return err
	}
	if len(states) == 0 {
		fmt.Println("no test bed recorded under", testbed.RunBase())
		return nil
	}
	for _, st := range states {
		alive := 0
		for _, p := range st.Processes {
			if testbed.ProcessAlive(p) {
				alive++
			}
		}
		kind := "test"
		if st.Detached {
			kind = "cli"
		}
		fmt.Printf("%s  (%s, started %s, %d/%d processes running)\n", st.Prefix, kind, st.Created.Format(time.RFC3339), alive, len(st.Processes))
		fmt.Printf("  export KUBECONFIG=%s\n", st.Kubeconfig)
		for _, ns := range st.Namespaces {
			fmt.Printf("  ip netns exec %s bash\n", ns)
		}
		fmt.Printf("  logs: %s\n", filepath.Join(st.RunDir, "logs"))
	}
	return nil
}
