package migrate

import (
	"strings"
	"testing"

	"github.com/heraldlb/herald/api/v1beta1"
)

// convertYAML converts one YAML stream.
func convertYAML(t *testing.T, doc string) *Result {
	t.Helper()
	var in Input
	if err := in.AddYAML("test", []byte(doc)); err != nil {
		t.Fatal(err)
	}
	return Convert(&in)
}

func poolDoc(sa string) string {
	return `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: p, namespace: metallb-system}
spec:
  addresses: [192.0.2.0/24]
` + sa
}

// TestPriorityRule checks the documented rule: MetalLB's 0 (unset, the
// lowest) becomes no priority; a positive priority stays; a
// serviceAllocation with nothing to select keeps selecting every Service.
func TestPriorityRule(t *testing.T) {
	for _, tc := range []struct {
		desc         string
		sa           string
		wantPriority *int32
		wantSelector bool // serviceSelectors [{}]
		wantAdjusted int
	}{
		{desc: "no serviceAllocation", sa: ""},
		{desc: "positive priority with a namespace is kept", sa: "  serviceAllocation: {priority: 5, namespaces: [a]}\n", wantPriority: ptr[int32](5)},
		{desc: "priority 0 with a namespace becomes unset", sa: "  serviceAllocation: {priority: 0, namespaces: [a]}\n", wantAdjusted: 1},
		{desc: "no priority with a namespace stays unset", sa: "  serviceAllocation: {namespaces: [a]}\n"},
		{desc: "priority 0 alone selects everything, unset", sa: "  serviceAllocation: {priority: 0}\n", wantSelector: true, wantAdjusted: 2},
		{desc: "positive priority alone selects everything", sa: "  serviceAllocation: {priority: 3}\n", wantPriority: ptr[int32](3), wantSelector: true, wantAdjusted: 1},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			res := convertYAML(t, poolDoc(tc.sa))
			if len(res.Output.Pools) != 1 {
				t.Fatalf("got %d pools", len(res.Output.Pools))
			}
			sa := res.Output.Pools[0].Spec.ServiceAllocation
			var got *int32
			if sa != nil {
				got = sa.Priority
			}
			if (got == nil) != (tc.wantPriority == nil) || got != nil && *got != *tc.wantPriority {
				t.Errorf("priority = %v, want %v", got, tc.wantPriority)
			}
			hasAll := sa != nil && len(sa.ServiceSelectors) == 1 && len(sa.ServiceSelectors[0].MatchLabels) == 0 && len(sa.ServiceSelectors[0].MatchExpressions) == 0
			if hasAll != tc.wantSelector {
				t.Errorf("match-all selector = %v, want %v", hasAll, tc.wantSelector)
			}
			if n := res.Report.Count(Adjusted); n != tc.wantAdjusted {
				t.Errorf("%d adjusted findings, want %d: %+v", n, tc.wantAdjusted, res.Report.Findings)
			}
			if !res.Report.Faithful() {
				t.Errorf("not faithful: %+v", res.Report.Findings)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

const communityDoc = `apiVersion: metallb.io/v1beta1
kind: Community
metadata: {name: c, namespace: metallb-system}
spec:
  communities:
  - {name: NO_ADVERTISE, value: "65535:65282"}
  - {name: vpn-only, value: "1234:1"}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: p, namespace: metallb-system}
spec: {addresses: [192.0.2.0/24]}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: a, namespace: metallb-system}
spec:
  communities: [COMMUNITY]
`

// TestCommunityReferences checks how an advertisement's community is
// written: a value, a (renamed) alias, a well-known name, or nothing.
func TestCommunityReferences(t *testing.T) {
	for _, tc := range []struct {
		desc     string
		ref      string
		want     string // "" when dropped
		faithful bool
	}{
		{desc: "standard value", ref: "64500:1", want: "64500:1", faithful: true},
		{desc: "value with leading zeros", ref: "64500:001", want: "64500:1", faithful: true},
		{desc: "large value", ref: "large:1:2:3", want: "large:1:2:3", faithful: true},
		{desc: "MetalLB's documented alias", ref: "NO_ADVERTISE", want: "no-advertise", faithful: true},
		{desc: "alias already valid", ref: "vpn-only", want: "vpn-only", faithful: true},
		{desc: "well-known name without a Community", ref: "NO_EXPORT", want: "65535:65281", faithful: true},
		{desc: "undefined alias", ref: "nowhere", faithful: false},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			res := convertYAML(t, strings.Replace(communityDoc, "COMMUNITY", `"`+tc.ref+`"`, 1))
			if len(res.Output.BGPAdvertisements) != 1 {
				t.Fatalf("got %d advertisements; report %+v", len(res.Output.BGPAdvertisements), res.Report.Findings)
			}
			got := res.Output.BGPAdvertisements[0].Spec.Communities
			switch {
			case tc.want == "" && len(got) != 0:
				t.Errorf("communities = %v, want none", got)
			case tc.want != "" && (len(got) != 1 || got[0] != v1beta1.CommunityValue(tc.want)):
				t.Errorf("communities = %v, want [%s]", got, tc.want)
			}
			if res.Report.Faithful() != tc.faithful {
				t.Errorf("faithful = %v, want %v: %+v", res.Report.Faithful(), tc.faithful, res.Report.Findings)
			}
		})
	}
}

func TestHeraldAliasName(t *testing.T) {
	for _, tc := range []struct{ desc, in, want string }{
		{desc: "upper case with underscores", in: "NO_ADVERTISE", want: "no-advertise"},
		{desc: "already valid", in: "vpn.only-1", want: "vpn.only-1"},
		{desc: "leading and trailing junk", in: "_Foo Bar_", want: "foo-bar"},
		{desc: "nothing left", in: "__", want: ""},
		{desc: "too long", in: strings.Repeat("a", 70), want: strings.Repeat("a", 63)},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if got := heraldAliasName(tc.in); got != tc.want {
				t.Errorf("heraldAliasName(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestLegacyName(t *testing.T) {
	for _, tc := range []struct{ desc, in, want string }{
		{desc: "camel case", in: "holdTime", want: "hold-time"},
		{desc: "acronym", in: "myASN", want: "my-asn"},
		{desc: "exception", in: "avoidBuggyIPs", want: "avoid-buggy-ips"},
		{desc: "indexed", in: "communities[1]", want: "communities[1]"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if got := legacyName(tc.in); got != tc.want {
				t.Errorf("legacyName(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestPeerDefaults checks that the fields MetalLB's v1beta2 CRD fills in
// with its defaults are dropped, and that a v1beta1 peer's zero timers
// mean unset.
func TestPeerDefaults(t *testing.T) {
	for _, tc := range []struct {
		desc, doc    string
		wantHold     string // "" for unset
		wantFaithful bool
	}{
		{
			desc: "v1beta2 defaults",
			doc: `apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: p, namespace: metallb-system}
spec: {myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, disableMP: false, dualStackAddressFamily: false, passwordSecret: {}, holdTime: 90s}`,
			wantHold: "1m30s", wantFaithful: true,
		},
		{
			desc: "v1beta1 zero timers",
			doc: `apiVersion: metallb.io/v1beta1
kind: BGPPeer
metadata: {name: p, namespace: metallb-system}
spec: {myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, holdTime: 0s, keepaliveTime: 0s}`,
			wantFaithful: true,
		},
		{
			desc: "disableMP true is carried over",
			doc: `apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: p, namespace: metallb-system}
spec: {myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, disableMP: true, holdTime: 90s}`,
			wantHold: "1m30s", wantFaithful: true,
		},
		{
			desc: "v1beta2 hold time 0 has no equivalent",
			doc: `apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: p, namespace: metallb-system}
spec: {myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, holdTime: 0s}`,
		},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			res := convertYAML(t, tc.doc)
			if len(res.Output.Peers) != 1 {
				t.Fatalf("got %d peers", len(res.Output.Peers))
			}
			p := res.Output.Peers[0].Spec
			got := ""
			if p.HoldTime != nil {
				got = p.HoldTime.Duration.String()
			}
			if got != tc.wantHold {
				t.Errorf("holdTime = %q, want %q", got, tc.wantHold)
			}
			if p.PasswordSecret != nil || p.KeepaliveTime != nil {
				t.Errorf("unexpected fields: %+v", p)
			}
			if res.Report.Faithful() != tc.wantFaithful {
				t.Errorf("faithful = %v, want %v: %+v", res.Report.Faithful(), tc.wantFaithful, res.Report.Findings)
			}
		})
	}
}

// TestInputErrors checks that input that is not YAML, or has no kind, is
// an error rather than a silent skip.
func TestInputErrors(t *testing.T) {
	for _, tc := range []struct{ desc, doc string }{
		{desc: "not YAML", doc: "a: [b"},
		{desc: "no kind", doc: "apiVersion: metallb.io/v1beta1\nmetadata: {name: x}\n"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var in Input
			if err := in.AddYAML("test", []byte(tc.doc)); err == nil {
				t.Error("no error")
			}
		})
	}
}

// TestLocalPrefConflict checks the report of two advertisements of one
// pool with different localPref: MetalLB accepts them when their
// aggregation lengths differ, Herald does not; the report says which and
// why, and exits unfaithful.
func TestLocalPrefConflict(t *testing.T) {
	adv := func(name, extra string) string {
		return `---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: ` + name + `, namespace: metallb-system}
spec:
  ipAddressPools: [p]
` + extra
	}
	for _, tc := range []struct {
		desc, docs string
		wantHint   bool
	}{
		{"different aggregation", adv("a", "  localPref: 100\n  aggregationLength: 24\n") + adv("b", "  localPref: 200\n"), true},
		{"same aggregation", adv("a", "  localPref: 100\n") + adv("b", "  localPref: 200\n"), false},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			res := convertYAML(t, poolDoc("")+tc.docs)
			if res.Report.Faithful() {
				t.Fatalf("faithful, want a no-equivalent line: %+v", res.Report.Findings)
			}
			if len(res.Output.BGPAdvertisements) != 1 || res.Output.BGPAdvertisements[0].Name != "a" {
				t.Errorf("advertisements = %v, want only a (the first)", res.Output.BGPAdvertisements)
			}
			var sb strings.Builder
			if err := res.Report.WriteText(&sb); err != nil {
				t.Fatal(err)
			}
			text := sb.String()
			if !strings.Contains(text, "LocalPrefConflict") {
				t.Errorf("report does not name the conflict:\n%s", text)
			}
			if got := strings.Contains(text, "MetalLB accepts it because the aggregation lengths differ (b: 32/128, a: 24/128"); got != tc.wantHint {
				t.Errorf("hint = %v, want %v:\n%s", got, tc.wantHint, text)
			}
		})
	}
}
