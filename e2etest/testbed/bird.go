package testbed

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// BIRDFabricIP is the address of the BIRD 2 router (StartBIRD) on the
// fabric; BIRDASN its AS number.
var (
	BIRDFabricIP  = netip.MustParseAddr("198.18.0.3")
	BIRDFabricIP6 = netip.MustParseAddr("2001:db8:18::3")
)

// BIRDASN is the AS number tests give the BIRD router.
const BIRDASN = 64513

// BIRD is a second router implementation on the fabric: BIRD 2 (Debian
// bird2), in a namespace of its own, with no route to anything but the
// fabric. Tests configure it with a complete configuration file.
type BIRD struct {
	NS
	IP, IP6 netip.Addr
	Dir     string
	Proc    *Process
	bed     *Bed
}

// StartBIRD attaches a BIRD router to the fabric at BIRDFabricIP (and
// BIRDFabricIP6 on a dual-stack bed) and starts bird with conf. It is torn
// down with the bed.
func (b *Bed) StartBIRD(ctx context.Context, conf string) (*BIRD, error) {
	bin, err := exec.LookPath("bird")
	if err != nil {
		return nil, fmt.Errorf("bird: %w (apt-get install bird2)", err)
	}
	r := &BIRD{NS: b.addNS("bird"), IP: BIRDFabricIP, bed: b}
	if b.opts.DualStack {
		r.IP6 = BIRDFabricIP6
	}
	if err := b.saveState(); err != nil {
		return nil, err
	}
	if err := b.attachToFabric(ctx, r.NS, "bird", r.IP, r.IP6); err != nil {
		return nil, fmt.Errorf("bird: %w", err)
	}
	r.Dir = filepath.Join(b.RunDir, "bird")
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(r.conf(), []byte(conf), 0o644); err != nil {
		return nil, err
	}
	// -f: foreground, so the bed owns the process and stops it by PID.
	if r.Proc, err = b.startProcess(ctx, NSName(r.Name), "bird", bin, "-f", "-c", r.conf(), "-s", r.sock()); err != nil {
		return nil, err
	}
	err = waitFor(ctx, 50*time.Millisecond, "bird answering birdc", func(ctx context.Context) (bool, error) {
		if !r.Proc.Running() {
			return false, fmt.Errorf("bird exited; see %s", r.Proc.Log)
		}
		_, err := r.Birdc(ctx, "show status")
		return err == nil, nil
	})
	return r, err
}

func (r *BIRD) conf() string { return filepath.Join(r.Dir, "bird.conf") }
func (r *BIRD) sock() string { return filepath.Join(r.Dir, "bird.ctl") }

// Birdc runs one birdc command and returns its output.
func (r *BIRD) Birdc(ctx context.Context, cmd string) (string, error) {
	out, err := exec.CommandContext(ctx, "birdc", append([]string{"-s", r.sock()}, strings.Fields(cmd)...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("birdc %s: %w: %s", cmd, err, out)
	}
	return string(out), nil
}

// Reconfigure replaces the configuration and makes bird load it.
func (r *BIRD) Reconfigure(ctx context.Context, conf string) error {
	if err := os.WriteFile(r.conf(), []byte(conf), 0o644); err != nil {
		return err
	}
	out, err := r.Birdc(ctx, "configure")
	if err != nil {
		return err
	}
	if !strings.Contains(out, "Reconfigured") && !strings.Contains(out, "Reconfiguration in progress") {
		return fmt.Errorf("birdc configure: %s", out)
	}
	return nil
}

// ProtocolState returns the state line of a BGP protocol as `show
// protocols` prints it ("up", "start", ...), and its info column
// ("Established", "Active", ...).
func (r *BIRD) ProtocolState(ctx context.Context, name string) (state, info string, err error) {
	out, err := r.Birdc(ctx, "show protocols "+name)
	if err != nil {
		return "", "", err
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && f[0] == name {
			// name proto table state since info... ("since" may be one
			// field or two)
			info := ""
			if len(f) >= 6 {
				info = strings.Join(f[5:], " ")
			}
			return f[3], info, nil
		}
	}
	return "", "", fmt.Errorf("no protocol %s in %q", name, out)
}

// RoutesFrom returns how many routes for prefix the router holds from
// protocol (stale ones included).
func (r *BIRD) RoutesFrom(ctx context.Context, prefix netip.Prefix, protocol string) (int, error) {
	out, err := r.Birdc(ctx, fmt.Sprintf("show route %s protocol %s", prefix, protocol))
	if err != nil {
		return 0, err
	}
	// "203.0.113.128/32     unicast [node_node1 10:02:56.097] * (100) [AS64600i]"
	return strings.Count(out, "["+protocol+" "), nil
}
