package testbed

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"
)

// SpeakerCapabilities returns the capabilities the speaker DaemonSet of
// config/speaker grants its container (securityContext.capabilities.add,
// after drop: [ALL]), as the manifest spells them (NET_RAW).
func SpeakerCapabilities(repoRoot string) ([]string, error) {
	path := filepath.Join(repoRoot, "config", "speaker", "daemonset.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var ds appsv1.DaemonSet
	if err := yaml.Unmarshal(b, &ds); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, c := range ds.Spec.Template.Spec.Containers {
		if c.Name != "speaker" || c.SecurityContext == nil || c.SecurityContext.Capabilities == nil {
			continue
		}
		caps := c.SecurityContext.Capabilities
		if len(caps.Drop) != 1 || caps.Drop[0] != "ALL" {
			return nil, fmt.Errorf("%s: the speaker drops %v, want [ALL]", path, caps.Drop)
		}
		var out []string
		for _, c := range caps.Add {
			out = append(out, string(c))
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s: no speaker container with capabilities", path)
}

// capArgv wraps argv so that it runs as a container runtime runs the
// speaker's container: uid 0 with only caps in its bounding, permitted and
// effective sets, none inheritable or ambient, and no_new_privs
// (allowPrivilegeEscalation: false).
func capArgv(caps []string, argv ...string) []string {
	set := "-all"
	for _, c := range caps {
		set += ",+" + strings.ToLower(strings.TrimPrefix(c, "CAP_"))
	}
	return append([]string{"setpriv", "--bounding-set", set, "--inh-caps", "-all", "--no-new-privs", "--"}, argv...)
}

// StartSpeaker is Start for the speaker binary: it runs with exactly the
// capabilities config/speaker/daemonset.yaml grants, so that a speaker
// needing one more fails on the bed as it would in a cluster.
func (n *Node) StartSpeaker(ctx context.Context, name, bin string, args ...string) (*Process, error) {
	caps, err := SpeakerCapabilities(n.bed.opts.RepoRoot)
	if err != nil {
		return nil, err
	}
	argv := capArgv(caps, append([]string{bin}, args...)...)
	return n.Start(ctx, name, argv[0], argv[1:]...)
}
