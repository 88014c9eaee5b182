package migrate

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/heraldlb/herald/api/v1beta1"
)

// PlanNode is a node of the cluster, as the plan needs it.
type PlanNode struct {
	Name   string
	Labels map[string]string
	// IPv4 and IPv6 are its InternalIPs (invalid when it has none).
	IPv4, IPv6 netip.Addr
}

// PlanInput is what the switch-over plan is written from.
type PlanInput struct {
	// Output is the converted configuration.
	Output *Output
	// Namespace is MetalLB's namespace.
	Namespace string
	// Nodes are the cluster's nodes; nil when reading files (the plan then
	// shows placeholders).
	Nodes []PlanNode
	// MigrationAddresses maps a BGPPeer's name to the router's address of
	// the other family, that Herald peers with during the overlap.
	MigrationAddresses map[string]netip.Addr
}

// Planned ports of Herald's speaker while it runs beside MetalLB's.
const (
	planMemberlistPort = 7947
	planMetricsPort    = 7572
	planHealthPort     = 7573
)

// ParkLabel is the node label of the nodeSelector that parks MetalLB's
// speaker DaemonSet (no node has it): its pods go, the DaemonSet stays for
// a rollback.
const ParkLabel = "herald.io/metallb-parked"

// WritePlan writes the switch-over steps for the configuration in in, and
// the rollback. L2 and BGP steps appear only when the configuration uses
// them.
func WritePlan(w io.Writer, in PlanInput) error {
	out := in.Output
	ns := cmp.Or(in.Namespace, "metallb-system")
	hasL2 := len(out.L2Advertisements) > 0
	hasBGP := len(out.BGPAdvertisements) > 0 && len(out.Peers) > 0
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	step := 0
	head := func(title string) {
		step++
		p("")
		p("%d. %s", step, title)
	}

	p("Switch-over from MetalLB to Herald")
	p("==================================")
	var pools []string
	for _, pl := range out.Pools {
		pools = append(pools, pl.Name)
	}
	p("This configuration: %d pools (%s); %d L2Advertisements, %d BGPAdvertisements, %d BGPPeers; %s.",
		len(out.Pools), strings.Join(pools, ", "), len(out.L2Advertisements), len(out.BGPAdvertisements), len(out.Peers), nodesSummary(in.Nodes))
	p("Every Service keeps its address: Herald's controller adopts the addresses in Service status.")
	if hasL2 {
		p("L2: Herald's speakers answer ARP/NDP beside MetalLB's before MetalLB's stop, with a gratuitous ARP/NA when they")
		p("    start: no window without an announcement.")
	}
	if hasBGP {
		p("BGP: Herald's sessions are up, with the same next hops, before MetalLB's go down: the router's routes never")
		p("    change. A router takes one session per neighbour address, so during the overlap Herald peers from the")
		p("    node's address of the other family (step 2).")
	}
	p("MetalLB's objects in %s are never changed: until the last step, the rollback at the end puts MetalLB back.", ns)

	head("Convert the configuration and read the report (exit status 0: faithful).")
	p("   kubectl herald migrate -n %s -o herald-config/", ns)
	if hasBGP {
		p("   mkdir herald-peers && mv herald-config/bgppeer-*.yaml herald-peers/    # applied in step %d", step+6)
	}

	if hasBGP {
		head("BGP: let every router take a second session from each node, over the other address family.")
		p("   While MetalLB's speaker holds the session from a node's address, the router refuses a second one from the")
		p("   same address (RFC 4271 connection collision: the newer connection is closed), whatever its source port.")
		p("   Herald's temporary peers dial the router's other address from the node's other address; their routes carry")
		p("   the node's own address of the route's family as next hop (Herald sets it), so the router's ECMP next hops")
		p("   stay the same.")
		for i := range out.Peers {
			writePeerMigration(p, &out.Peers[i], in)
		}
	}

	head("Stop MetalLB's controller. Addresses stay in Service status; a new Service waits for its address until the next step.")
	p("   kubectl -n %s scale deployment controller --replicas=0    # Helm: deployment metallb-controller", ns)

	head("Install Herald with its speaker on other host ports than MetalLB's, and apply the configuration.")
	p("   helm install herald ./charts/herald -n herald-system --create-namespace \\")
	p("     --set speaker.memberlist.port=%d --set ports.metrics=%d --set ports.health=%d", planMemberlistPort, planMetricsPort, planHealthPort)
	p("   (config/manifests/herald.yaml: speaker flags --memberlist-port=%d --metrics-addr=:%d --health-addr=:%d)", planMemberlistPort, planMetricsPort, planHealthPort)
	p("   Open TCP and UDP %d between the nodes (Herald's memberlist).", planMemberlistPort)
	if hasBGP {
		p("   kubectl apply -f herald-migration-peers.yaml")
	}
	p("   kubectl apply -f herald-config/")
	p("   Check: kubectl get herald -A                  # every object Ready")
	p("          kubectl get svc -A -o wide             # the same EXTERNAL-IPs as before")
	p("          every LoadBalancer Service carries herald.io/ip-allocated-from-pool")

	head("Check that Herald announces beside MetalLB.")
	if hasL2 {
		p("   L2:  kubectl get events -A --field-selector reason=Announcing    # one per L2 Service and node")
	}
	if hasBGP {
		p("   BGP: kubectl get bgpsessionstates -n herald-system              # Established, prefixes sent")
		p("        on the router: two paths per node for each address (FRR: show bgp ipv4 unicast <ip>;")
		p("        BIRD: birdc show route for <ip> all), and the same next hops in the FIB")
	}

	head("Stop MetalLB's speakers, keeping their DaemonSet (Helm: metallb-speaker) for a rollback: a nodeSelector no node matches.")
	p("   kubectl -n %s patch daemonset speaker --type merge \\", ns)
	p(`     -p '{"spec":{"template":{"spec":{"nodeSelector":{%q:"true"}}}}}'`, ParkLabel)
	if hasL2 {
		p("   L2: a client whose neighbour cache still names MetalLB's node keeps reaching the Service through it")
		p("       (kube-proxy forwards on every node) until it resolves the address again, which Herald answers.")
	}
	if hasBGP {
		p("   BGP: the router drops MetalLB's paths; Herald's, with the same next hops, carry the traffic.")

		head("BGP: move Herald to the converted peers, then remove the temporary ones.")
		p("   kubectl apply -f herald-peers/")
		p("   kubectl get bgpsessionstates -n herald-system   # the converted peers Established on every node")
		p("   kubectl delete -f herald-migration-peers.yaml")
		p("   On the router, remove the configuration of step 2 (FRR: no neighbor HERALD-MIGRATION peer-group, and")
		p("   the neighbor lines; BIRD: the herald_migration protocols, then birdc configure).")
	}

	head("Remove MetalLB's annotation from the Services (MetalLB's controller is stopped, it would write it back).")
	p("   kubectl herald migrate cleanup")
	p("   (--rename also moves metallb.io/loadBalancerIPs, address-pool and allow-shared-ip to herald.io/; a")
	p("   rollback then no longer sees them: do it last.)")

	head("Once you no longer want a rollback: remove MetalLB (helm uninstall, or delete its manifests, the")
	p("   %s namespace and its CRDs). Herald's speaker may keep ports %d/%d/%d; moving them", ns, planMemberlistPort, planMetricsPort, planHealthPort)
	p("   back is a rolling restart of the speakers.")

	p("")
	p("Rollback (any time before the last step)")
	p("----------------------------------------")
	p("The same overlap, in the other direction; MetalLB's objects were never changed.")
	if hasBGP {
		p("- BGP, after step %d: apply herald-migration-peers.yaml and step 2 on the router again, wait until they", step-2)
		p("  are Established, then kubectl delete -f herald-peers/ (MetalLB's sessions need the nodes' addresses).")
	}
	p("- Start MetalLB's speakers again:")
	p("    kubectl -n %s patch daemonset speaker --type json \\", ns)
	p(`      -p '[{"op":"remove","path":"/spec/template/spec/nodeSelector/%s"}]'`, strings.ReplaceAll(ParkLabel, "/", "~1"))
	if hasBGP {
		p("  and wait until they announce (MetalLB's speaker pods Ready; BGP: the router has two paths per node).")
	} else {
		p("  and wait until they announce (MetalLB's speaker pods Ready).")
	}
	p("- Stop Herald's controller, then start MetalLB's, which adopts the addresses in status and writes its")
	p("  annotation back:")
	p("    kubectl -n herald-system scale deployment herald-controller --replicas=0")
	p("    kubectl -n %s scale deployment controller --replicas=1", ns)
	p("- Remove Herald: helm uninstall herald -n herald-system (its speakers stop announcing; MetalLB's do).")
	if hasBGP {
		p("- BGP: remove the router configuration of step 2.")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func nodesSummary(nodes []PlanNode) string {
	if nodes == nil {
		return "nodes not read (from files)"
	}
	v6 := 0
	for _, n := range nodes {
		if n.IPv6.IsValid() {
			v6++
		}
	}
	return fmt.Sprintf("%d nodes, %d with an IPv6 InternalIP", len(nodes), v6)
}

// writePeerMigration writes the temporary peer and the router
// configuration for one converted BGPPeer.
func writePeerMigration(p func(string, ...any), peer *v1beta1.BGPPeer, in PlanInput) {
	s := peer.Spec
	pa, _ := netip.ParseAddr(s.PeerAddress)
	want6 := !pa.Is6() // the other family than the converted peer's
	fam := map[bool]string{true: "IPv6", false: "IPv4"}[want6]
	routerAddr := fmt.Sprintf("<router's %s address>", fam)
	if a, ok := in.MigrationAddresses[peer.Name]; ok {
		routerAddr = a.String()
	} else {
		p("")
		p("   BGPPeer %s: pass --migration-address %s=<router's %s address> to fill in the router's address.", peer.Name, peer.Name, fam)
	}
	p("")
	p("   BGPPeer %s (router %s, AS %d; nodes AS %d): Herald peers with %s during the overlap, from:", peer.Name, s.PeerAddress, s.PeerASN, s.MyASN, routerAddr)
	nodes := selectedNodes(s.NodeSelectors, in.Nodes)
	var addrs []string
	if in.Nodes == nil {
		addrs = []string{fmt.Sprintf("<each node's %s address>", fam)}
		p("     %s", addrs[0])
	}
	for _, n := range nodes {
		a := n.IPv4
		if want6 {
			a = n.IPv6
		}
		if !a.IsValid() {
			p("     %s: no %s InternalIP. Without one, switch this node over on its own: the router's next hops", n.Name, fam)
			p("       change twice and connections in flight then may be reset. Or give it a second address.")
			continue
		}
		addrs = append(addrs, a.String())
		p("     %-20s %s", n.Name, a)
	}
	if in.Nodes != nil && len(nodes) == 0 {
		p("     (no node: its nodeSelectors select none)")
	}
	p("   herald-migration-peers.yaml:")
	p("     apiVersion: herald.io/v1beta1")
	p("     kind: BGPPeer")
	p("     metadata: {name: %s-migration}", peer.Name)
	p("     spec:")
	p("       myASN: %d", s.MyASN)
	p("       peerASN: %d", s.PeerASN)
	p("       peerAddress: %q", routerAddr)
	if s.HoldTime != nil {
		p("       holdTime: %s", s.HoldTime.Duration)
	}
	if s.KeepaliveTime != nil {
		p("       keepaliveTime: %s", s.KeepaliveTime.Duration)
	}
	if s.PasswordSecret != nil {
		p("       passwordSecret: {name: %s}", s.PasswordSecret.Name)
	}
	if len(s.NodeSelectors) > 0 {
		sel, _ := json.Marshal(s.NodeSelectors)
		p("       nodeSelectors: %s", sel)
	}
	p("   FRR, on the router (vtysh; keep the timers, password and policies of the existing neighbours):")
	p("     router bgp %d", s.PeerASN)
	p("      neighbor HERALD-MIGRATION peer-group")
	p("      neighbor HERALD-MIGRATION remote-as %d", s.MyASN)
	for _, a := range addrs {
		p("      neighbor %s peer-group HERALD-MIGRATION", a)
	}
	p("      address-family ipv4 unicast")
	p("       neighbor HERALD-MIGRATION activate")
	p("      exit-address-family")
	p("      address-family ipv6 unicast")
	p("       neighbor HERALD-MIGRATION activate")
	p("      exit-address-family")
	p("     (with dynamic neighbours, a `bgp listen range <nodes' %s prefix> peer-group HERALD-MIGRATION` does the same)", fam)
	p("   BIRD 2, on the router (bird.conf, then birdc configure; not tested on Herald's test bed):")
	p("     template bgp herald_migration {")
	p("       local as %d;", s.PeerASN)
	p("       neighbor as %d;", s.MyASN)
	p("       ipv4 { import all; export none; };   # the IPv4 routes, over the %s session", fam)
	p("       ipv6 { import all; export none; };")
	p("     }")
	for i, a := range addrs {
		p("     protocol bgp herald_migration_%d from herald_migration { neighbor %s; }", i+1, a)
	}
	p("     (and `merge paths on;` in the kernel protocol for ECMP, as for MetalLB's sessions)")
}

// selectedNodes returns the nodes the selectors select (every node when
// there are none), by name.
func selectedNodes(sels []metav1.LabelSelector, nodes []PlanNode) []PlanNode {
	var out []PlanNode
	for _, n := range nodes {
		ok := len(sels) == 0
		for i := range sels {
			sel, err := metav1.LabelSelectorAsSelector(&sels[i])
			if err == nil && sel.Matches(labels.Set(n.Labels)) {
				ok = true
				break
			}
		}
		if ok {
			out = append(out, n)
		}
	}
	slices.SortFunc(out, func(a, b PlanNode) int { return cmp.Compare(a.Name, b.Name) })
	return out
}
