package e2etest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/heraldlb/herald/e2etest/testbed"
)

// profileDir is where the benchmarks save heap profiles of the processes
// they measure: $HERALD_BENCH_PROFILES, or "" (no profiles). Read them with
// `go tool pprof -sample_index=inuse_space bin/herald-speaker FILE`.
func profileDir() string { return os.Getenv("HERALD_BENCH_PROFILES") }

// pprofArgs returns the --pprof-addr flag for a process whose heap a
// benchmark will save, or nothing when profiles are off. In a node's
// namespace the port is free; in the root namespace (shared with other
// beds) a free port is picked.
func pprofArgs(tb testing.TB, rootNS bool) (args []string, addr string) {
	tb.Helper()
	if profileDir() == "" {
		return nil, ""
	}
	addr = "127.0.0.1:6060"
	if rootNS {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		addr = ln.Addr().String()
		_ = ln.Close()
	}
	return []string{"--pprof-addr", addr}, addr
}

// saveHeap saves the heap profile served at addr (inside ns, or in the root
// namespace when ns is empty) as name in profileDir, after a GC (?gc=1), so
// that in-use figures count live objects only.
func saveHeap(tb testing.TB, ns testbed.NS, addr, name string) {
	tb.Helper()
	dir := profileDir()
	if dir == "" || addr == "" {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	file := filepath.Join(dir, name)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	argv := []string{"curl", "-sf", "-o", file, fmt.Sprintf("http://%s/debug/pprof/heap?gc=1", addr)}
	var err error
	if ns.Name == "" {
		var out []byte
		if out, err = exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput(); err != nil {
			err = fmt.Errorf("%w: %s", err, out)
		}
	} else {
		_, err = ns.Run(ctx, argv...)
	}
	if err != nil {
		tb.Logf("heap profile %s: %v", name, err)
		return
	}
	tb.Logf("heap profile: %s", file)
}
