package migrate

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
)

// TestPlanGolden writes the switch-over plan of the BGP and L2 examples
// for a three-node cluster whose node3 has no IPv6 address.
func TestPlanGolden(t *testing.T) {
	res := convertFile(t, "testdata/bgp.in.yaml")
	l2 := convertFile(t, "testdata/l2.in.yaml")
	res.Output.Pools = append(res.Output.Pools, l2.Output.Pools...)
	res.Output.L2Advertisements = l2.Output.L2Advertisements
	nodes := []PlanNode{
		{Name: "node1", Labels: map[string]string{"rack": "a"}, IPv4: netip.MustParseAddr("10.0.0.11"), IPv6: netip.MustParseAddr("fd00::11")},
		{Name: "node2", Labels: map[string]string{"rack": "b"}, IPv4: netip.MustParseAddr("10.0.0.12"), IPv6: netip.MustParseAddr("fd00::12")},
		{Name: "node3", Labels: map[string]string{"rack": "b"}, IPv4: netip.MustParseAddr("10.0.0.13")},
	}
	var b bytes.Buffer
	err := WritePlan(&b, PlanInput{Output: &res.Output, Namespace: "metallb-system", Nodes: nodes,
		MigrationAddresses: map[string]netip.Addr{"tor-a": netip.MustParseAddr("fd00::1")}})
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "testdata/plan.golden", b.Bytes())
	for _, want := range []string{
		"neighbor fd00::11 peer-group HERALD-MIGRATION",                                // FRR, the nodes' other family
		"protocol bgp herald_migration_2 from herald_migration { neighbor fd00::12; }", // BIRD
		`peerAddress: "fd00::1"`,
		"node3: no IPv6 InternalIP",
		"--set speaker.memberlist.port=7947",
		"kubectl herald migrate cleanup",
		"Rollback",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("plan lacks %q", want)
		}
	}
}

// TestPlanL2Only leaves out the BGP steps when nothing is advertised over
// BGP.
func TestPlanL2Only(t *testing.T) {
	res := convertFile(t, "testdata/l2.in.yaml")
	var b bytes.Buffer
	if err := WritePlan(&b, PlanInput{Output: &res.Output}); err != nil {
		t.Fatal(err)
	}
	for _, absent := range []string{"BGP:", "HERALD-MIGRATION", "bgppeer"} {
		if strings.Contains(b.String(), absent) {
			t.Errorf("an L2-only plan mentions %q:\n%s", absent, b.String())
		}
	}
	if !strings.Contains(b.String(), "reason=Announcing") {
		t.Errorf("no L2 check:\n%s", b.String())
	}
}
