package testbed

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// NS is a named network namespace (as listed by `ip netns list`).
type NS struct {
	// Name is the namespace's name, prefixed with the bed's run prefix.
	Name string
}

// String returns the namespace name.
func (n NS) String() string { return n.Name }

// Command returns a command that runs argv inside the namespace.
func (n NS) Command(ctx context.Context, argv ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name}, argv...)...)
}

// Run runs argv inside the namespace and returns its combined output. The
// error names the namespace, the command and its output.
func (n NS) Run(ctx context.Context, argv ...string) (string, error) {
	var out bytes.Buffer
	cmd := n.Command(ctx, argv...)
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("netns %s: %s: %w: %s", n.Name, strings.Join(argv, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// exec is Run for setup steps: it returns only the error.
func (n NS) exec(ctx context.Context, argv ...string) error {
	_, err := n.Run(ctx, argv...)
	return err
}

// Shell returns the command a person types to get a shell in the namespace.
func (n NS) Shell() string { return "ip netns exec " + n.Name + " bash" }

// Do runs f on a goroutine locked to an OS thread that has entered the
// namespace. Sockets created by f stay in the namespace after Do returns, so
// Do is how the test process dials from inside a namespace without exec.
func (n NS) Do(f func() error) error {
	target, err := os.Open("/run/netns/" + n.Name)
	if err != nil {
		return fmt.Errorf("netns %s: %w", n.Name, err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer self.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns %s: setns: %w", n.Name, err)
			return
		}
		ferr := f()
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			// The thread stays locked, so the runtime destroys it when this
			// goroutine returns instead of reusing it in the wrong namespace.
			errc <- fmt.Errorf("netns %s: restore: %w", n.Name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// DialContext dials network/address from inside the namespace.
func (n NS) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var conn net.Conn
	err := n.Do(func() error {
		var d net.Dialer
		var err error
		conn, err = d.DialContext(ctx, network, address)
		return err
	})
	return conn, err
}

// Neighbor is one entry of a namespace's neighbour table.
type Neighbor struct {
	Dst    string   `json:"dst"`
	Dev    string   `json:"dev"`
	LLAddr string   `json:"lladdr"`
	State  []string `json:"state"`
	Router bool     `json:"router"`
}

// Neighbors reads the namespace's neighbour table (IPv4 and IPv6) with
// `ip -j neigh show`.
func (n NS) Neighbors(ctx context.Context) ([]Neighbor, error) {
	out, err := n.Output(ctx, "ip", "-j", "neigh", "show")
	if err != nil {
		return nil, err
	}
	return parseNeighbors(out)
}

func parseNeighbors(out []byte) ([]Neighbor, error) {
	var raw []map[string]any
	if len(bytes.TrimSpace(out)) == 0 {
		return nil, nil
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		return nil, fmt.Errorf("parse ip -j neigh: %w", err)
	}
	var ns []Neighbor
	for _, r := range raw {
		var nb Neighbor
		nb.Dst, _ = r["dst"].(string)
		nb.Dev, _ = r["dev"].(string)
		nb.LLAddr, _ = r["lladdr"].(string)
		if _, ok := r["router"]; ok {
			nb.Router = true
		}
		if st, ok := r["state"].([]any); ok {
			for _, s := range st {
				if s, ok := s.(string); ok {
					nb.State = append(nb.State, s)
				}
			}
		}
		ns = append(ns, nb)
	}
	return ns, nil
}

// Output runs argv inside the namespace and returns its standard output.
func (n NS) Output(ctx context.Context, argv ...string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := n.Command(ctx, argv...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("netns %s: %s: %w: %s", n.Name, strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// Sysctl sets key=value inside the namespace.
func (n NS) Sysctl(ctx context.Context, key, value string) error {
	return n.exec(ctx, "sysctl", "-q", "-w", key+"="+value)
}

// run runs a command in the root namespace.
func run(ctx context.Context, argv ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}
