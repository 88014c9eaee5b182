package e2etest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/heraldlb/herald/e2etest/testbed"
)

// sessionDownSaysWhy shuts the router's side of node1's iBGP session (peer
// core), the only session pool core is advertised on: Service core gets
// one NotAdvertised event, herald_bgp_unadvertised_ips counts its IP and
// `kubectl herald why core` names the session; once the neighbour is back
// the Service's .bgp.node1 object is there and why exits 0. It also checks
// that `kubectl herald status -o json` lists the BGP announcing nodes.
func (b *bgpBed) sessionDownSaysWhy(ctx context.Context, t *testing.T) {
	plugin, err := b.HeraldBinary(ctx, "kubectl-herald")
	if err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (int, string) {
		cmd := exec.CommandContext(ctx, plugin, append(args, "--kubeconfig", b.AdminKubeconfig, "--herald-namespace", testbed.HeraldNamespace)...)
		out, err := cmd.Output()
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			out = append(out, ee.Stderr...)
		}
		return cmd.ProcessState.ExitCode(), string(out)
	}
	why := func() (int, string) { return run("why", "core") }
	announcing := func() (map[string][]string, string) {
		_, out := run("status", "-o", "json")
		var rep struct {
			Services []struct {
				Service    string   `json:"service"`
				Announcing []string `json:"announcing"`
			} `json:"services"`
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			return nil, out
		}
		m := map[string][]string{}
		for _, s := range rep.Services {
			m[s.Service] = s.Announcing
		}
		return m, out
	}
	unadvertised := func() (float64, string) {
		return sumMetric(ctx, b.Nodes, speakerMetrics, `herald_bgp_unadvertised_ips{reason="NoEstablishedSession"}`)
	}
	events := func() []string { return notAdvertisedEvents(ctx, t, b.Bed, "core") }
	annRI, err := b.Resource(schema.GroupVersionKind{Group: "herald.io", Version: "v1beta1", Kind: "ServiceAnnouncement"}, "default")
	if err != nil {
		t.Fatal(err)
	}
	coreObjects := func() []string {
		list, err := annRI.List(ctx, metav1.ListOptions{LabelSelector: "herald.io/service=core"})
		if err != nil {
			return []string{err.Error()}
		}
		var names []string
		for _, o := range list.Items {
			names = append(names, o.GetName())
		}
		slices.Sort(names)
		return names
	}

	// Healthy: status lists the BGP announcing nodes; pool core goes to
	// peer core alone, which only node1 has.
	eventually(t, 20*time.Second, "status lists node1 (BGP: core) for core and the three nodes for web", func() (bool, string) {
		m, out := announcing()
		web := m["default/web"]
		ok := len(web) == 3
		for i, w := range web {
			ok = ok && strings.HasPrefix(w, fmt.Sprintf("node%d (BGP: ", i+1)) && strings.Contains(w, "edge")
		}
		return ok && slices.Equal(m["default/core"], []string{"node1 (BGP: core)"}), out
	})
	if code, out := why(); code != 0 {
		t.Fatalf("why core while its session is up: exit %d\n%s", code, out)
	}
	if ev := events(); len(ev) != 0 {
		t.Fatalf("NotAdvertised events before the session went down: %q", ev)
	}

	start := time.Now()
	n1 := b.Nodes[0].IP6.String()
	bgpRouter := fmt.Sprintf("router bgp %d", testbed.RouterASN)
	if err := b.Router.Configure(ctx, bgpRouter, " neighbor "+n1+" shutdown"); err != nil {
		t.Fatal(err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			if err := b.Router.Configure(context.Background(), bgpRouter, " no neighbor "+n1+" shutdown"); err != nil {
				t.Error(err)
			}
		}
	}
	defer restore()
	b.waitSessionState("node1-core", 20*time.Second, func(st map[string]any) bool { return st["state"] != "Established" })
	var msgs []string
	eventually(t, 30*time.Second, "a NotAdvertised event on core", func() (bool, string) {
		msgs = events()
		return len(msgs) > 0, ""
	})
	t.Logf("NotAdvertised %v after the router shut the neighbour: %q", time.Since(start).Round(time.Millisecond), msgs)
	if len(msgs) != 1 || !strings.Contains(msgs[0], "no router learns") || !strings.Contains(msgs[0], "node1 to peer core") {
		t.Errorf("events %q, want one naming node1's session to peer core", msgs)
	}
	eventually(t, 10*time.Second, "herald_bgp_unadvertised_ips{reason=NoEstablishedSession} summed over the speakers counts core's IP once", func() (bool, string) {
		v, s := unadvertised()
		return v == 1, s
	})
	code, out := why()
	if code != 1 || !strings.Contains(out, "Broken link: bgp: no BGP session is established") || !strings.Contains(out, "node1 to peer core") {
		t.Errorf("why core: exit %d, want 1 and the bgp link naming node1's session to core:\n%s", code, out)
	} else {
		t.Logf("kubectl herald why core:\n%s", out)
	}
	// Resyncs and status refreshes (every 2s here) add no event.
	time.Sleep(5 * time.Second)
	if ev := events(); len(ev) != 1 || !strings.HasSuffix(ev[0], "(x1)") {
		t.Errorf("NotAdvertised events %q, want one, recorded once", ev)
	}

	restore()
	b.waitSessionState("node1-core", 30*time.Second, func(st map[string]any) bool { return st["state"] == "Established" })
	eventually(t, 20*time.Second, "core.bgp.node1 present, why core exits 0 and the gauge is 0", func() (bool, string) {
		objs := coreObjects()
		code, out := why()
		v, s := unadvertised()
		return slices.Equal(objs, []string{"core.bgp.node1"}) && code == 0 && v == 0, fmt.Sprintf("%v exit %d gauge %s\n%s", objs, code, s, out)
	})
	t.Logf("session back: why core exits 0, %v", coreObjects())
}

// noAdvertisingNodeConfig is a pool whose only BGPAdvertisement selects
// node2 alone and names peer core, which only node1 has: a Service in it is
// advertised by no node. (A BGPAdvertisement that names a BGPPeer that does
// not exist is refused by the controller: its pool is then BGP's no more.)
const noAdvertisingNodeConfig = `
apiVersion: herald.io/v1beta1
kind: IPAddressPool
metadata: {name: lonely}
spec: {addresses: ["203.0.113.112/28"], autoAssign: false}
---
apiVersion: herald.io/v1beta1
kind: BGPAdvertisement
metadata: {name: lonely}
spec:
  ipAddressPools: [lonely]
  peers: [core]
  nodeSelectors: [{matchLabels: {herald-test/node: node2}}]
`

// noAdvertisingNode gives Service lonely an address from a pool whose
// BGPAdvertisement selects a node without the peer it names: no node
// advertises it, so it gets one NotAdvertised event saying so,
// herald_bgp_unadvertised_ips{reason="NoAdvertisingNode"} counts its IP and
// `kubectl herald why` exits 1 naming the cause. Once the advertisement
// names peer edge, node2 advertises it and the gauge is back to 0.
func (b *bgpBed) noAdvertisingNode(ctx context.Context, t *testing.T) {
	plugin, err := b.HeraldBinary(ctx, "kubectl-herald")
	if err != nil {
		t.Fatal(err)
	}
	why := func() (int, string) {
		cmd := exec.CommandContext(ctx, plugin, "why", "lonely", "--kubeconfig", b.AdminKubeconfig, "--herald-namespace", testbed.HeraldNamespace)
		out, err := cmd.Output()
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			out = append(out, ee.Stderr...)
		}
		return cmd.ProcessState.ExitCode(), string(out)
	}
	gauge := func() (float64, string) {
		return sumMetric(ctx, b.Nodes, speakerMetrics, `herald_bgp_unadvertised_ips{reason="NoAdvertisingNode"}`)
	}
	events := func() []string { return notAdvertisedEvents(ctx, t, b.Bed, "lonely") }
	if _, err := b.ApplyYAML(ctx, []byte(noAdvertisingNodeConfig)); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx := context.Background()
		_ = b.Client.CoreV1().Services("default").Delete(ctx, "lonely", metav1.DeleteOptions{})
		for _, k := range []string{"BGPAdvertisement", "IPAddressPool"} {
			if ri, err := b.Resource(schema.GroupVersionKind{Group: "herald.io", Version: "v1beta1", Kind: k}, ""); err == nil {
				_ = ri.Delete(ctx, "lonely", metav1.DeleteOptions{})
			}
		}
	}()
	start := time.Now()
	ips := b.serviceIPs(ctx, testbed.ServiceSpec{Name: "lonely", Mutate: func(s *corev1.Service) {
		s.Annotations = map[string]string{"herald.io/address-pool": "lonely"}
	}}, 1)
	var msgs []string
	eventually(t, 20*time.Second, "a NotAdvertised event on lonely", func() (bool, string) {
		msgs = events()
		return len(msgs) > 0, ""
	})
	t.Logf("NotAdvertised %v after the Service was created: %q", time.Since(start).Round(time.Millisecond), msgs)
	if len(msgs) != 1 || !strings.Contains(msgs[0], "no router learns "+ips[0].String()) ||
		!strings.Contains(msgs[0], "no node advertises it in BGP mode: no selected node has a BGPPeer the BGPAdvertisement advertises to (1 without a matching peer, 2 not selected) (BGPAdvertisement lonely)") {
		t.Errorf("events %q, want one saying no node has a peer that BGPAdvertisement lonely advertises to", msgs)
	}
	eventually(t, 10*time.Second, `herald_bgp_unadvertised_ips{reason="NoAdvertisingNode"} summed over the speakers is 1`, func() (bool, string) {
		v, s := gauge()
		return v == 1, s
	})
	code, out := why()
	if code != 1 || !strings.Contains(out, "Broken link: bgp: no node advertises it in BGP mode: no selected node has a BGPPeer") {
		t.Errorf("why lonely: exit %d, want 1 and the bgp link saying no node has the peer:\n%s", code, out)
	} else {
		t.Logf("kubectl herald why lonely:\n%s", out)
	}
	// Resyncs add no event.
	time.Sleep(3 * time.Second)
	if ev := events(); len(ev) != 1 || !strings.HasSuffix(ev[0], "(x1)") {
		t.Errorf("NotAdvertised events %q, want one, recorded once", ev)
	}

	fixed := strings.Replace(noAdvertisingNodeConfig, "peers: [core]", "peers: [edge]", 1)
	if _, err := b.ApplyYAML(ctx, []byte(fixed)); err != nil {
		t.Fatal(err)
	}
	b.waitNextHops(host(ips[0]), 15*time.Second, b.nodeIPs(false, 2)...)
	eventually(t, 15*time.Second, "the gauge back to 0 and why lonely exits 0", func() (bool, string) {
		v, s := gauge()
		code, out := why()
		return v == 0 && code == 0, fmt.Sprintf("gauge %s, why exit %d\n%s", s, code, out)
	})
	t.Logf("advertisement fixed: routed via node2, gauge 0, why exits 0 (%v after the Service was created)", time.Since(start).Round(time.Millisecond))
}

// notAdvertisedEvents returns the NotAdvertised events of Service
// default/svc, as "message (xcount)".
func notAdvertisedEvents(ctx context.Context, t *testing.T, bed *testbed.Bed, svc string) []string {
	t.Helper()
	evs, err := bed.Client.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + svc + ",reason=NotAdvertised"})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs.Items {
		out = append(out, fmt.Sprintf("%s (x%d)", e.Message, e.Count))
	}
	return out
}
