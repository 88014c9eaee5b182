package testbed

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// privateNetnsEnv marks the child that TestTeardownReportsErrors runs in a
// private mount namespace.
const privateNetnsEnv = "HERALD_TEARDOWN_PRIVATE_NETNS"

// TestTeardownReportsErrors checks that teardown and Sweep neither skip a
// bed's namespaces nor report success when something of the bed is left:
//   - a foreign namespace in a transient state (its /run/netns entry is not
//     a bind mount yet) makes `ip -j netns list` print an error line among its
//     JSON; teardown and Sweep must still delete the bed's namespaces;
//   - a namespace that cannot be deleted makes teardown return an error
//     naming it, and log no "test bed torn down".
//
// It runs in a child process with a private tmpfs on /run/netns, so that
// the broken entries it makes are never seen by other beds on the machine,
// and the namespaces it creates vanish with the child.
func TestTeardownReportsErrors(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if os.Getenv(privateNetnsEnv) != "1" {
		if _, err := exec.LookPath("unshare"); err != nil {
			t.Skip("needs unshare (util-linux)")
		}
		// $0 is the test binary; the child mounts its own /run/netns.
		cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c",
			`mkdir -p /run/netns && mount -t tmpfs tmpfs /run/netns && exec "$0" "$@"`,
			os.Args[0], "-test.run=^TestTeardownReportsErrors$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), privateNetnsEnv+"=1", "HERALD_RUN_DIR="+t.TempDir())
		out, err := cmd.CombinedOutput()
		t.Logf("child:\n%s", out)
		if err != nil {
			t.Fatalf("child: %v", err)
		}
		return
	}
	ctx := context.Background()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("hl%dy", dead.Process.Pid)
	addNS := func(name string) {
		t.Helper()
		if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add %s: %v: %s", name, err, out)
		}
	}
	// A foreign namespace caught between `touch` and `mount --bind`.
	if err := os.WriteFile(filepath.Join(netnsDir, "foreign-transient"), nil, 0o444); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command("ip", "-j", "netns", "list").CombinedOutput()
	if json.Valid(out) {
		t.Logf("ip -j netns list stays valid JSON with a transient namespace here: %s", out)
	}

	t.Run("listing error", func(t *testing.T) {
		ns := prefix + "-a"
		addNS(ns)
		var logBuf bytes.Buffer
		log := slog.New(slog.NewTextHandler(&logBuf, nil))
		if err := teardown(log, State{Prefix: prefix, Namespaces: []string{ns}}, nil); err != nil {
			t.Errorf("teardown: %v", err)
		}
		if netnsExists(ns) {
			t.Errorf("teardown left namespace %s behind", ns)
		}
		if !strings.Contains(logBuf.String(), "test bed torn down") {
			t.Errorf("teardown did not report success:\n%s", logBuf.String())
		}
	})

	t.Run("sweep with a listing error", func(t *testing.T) {
		ns := prefix + "-b"
		addNS(ns)
		if err := WriteStaleStateForTest(prefix, []string{ns}); err != nil {
			t.Fatal(err)
		}
		log := slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))
		if err := Sweep(ctx, log); err != nil {
			t.Errorf("sweep: %v", err)
		}
		if netnsExists(ns) {
			t.Errorf("sweep left namespace %s behind", ns)
		}
	})

	t.Run("namespace that cannot be deleted", func(t *testing.T) {
		ns := prefix + "-c"
		addNS(ns)
		// A directory with content where the bind mount was: `ip netns del`
		// unmounts the namespace but cannot unlink its entry.
		stuck := prefix + "-stuck"
		if err := os.MkdirAll(filepath.Join(netnsDir, stuck, "x"), 0o755); err != nil {
			t.Fatal(err)
		}
		var logBuf bytes.Buffer
		log := slog.New(slog.NewTextHandler(&logBuf, nil))
		err := teardown(log, State{Prefix: prefix, Namespaces: []string{ns, stuck}}, nil)
		if err == nil || !strings.Contains(err.Error(), stuck+" is still there") {
			t.Errorf("teardown returned %v, want an error naming %s as left behind", err, stuck)
		}
		if netnsExists(ns) {
			t.Errorf("teardown left namespace %s behind", ns)
		}
		if strings.Contains(logBuf.String(), "test bed torn down") {
			t.Errorf("teardown reported success with %s left:\n%s", stuck, logBuf.String())
		}
		if !strings.Contains(logBuf.String(), "teardown incomplete") {
			t.Errorf("teardown did not log the incomplete teardown:\n%s", logBuf.String())
		}

		// Sweep reports it too.
		if err := WriteStaleStateForTest(prefix, []string{stuck}); err != nil {
			t.Fatal(err)
		}
		if err := Sweep(ctx, slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))); err == nil {
			t.Errorf("sweep returned no error with %s left", stuck)
		}
		if err := os.RemoveAll(filepath.Join(netnsDir, stuck)); err != nil {
			t.Fatal(err)
		}
	})
}
