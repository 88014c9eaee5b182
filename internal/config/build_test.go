package config

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/heraldlb/herald/api/v1beta1"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func meta(name string, age int) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(t0.Add(time.Duration(age) * time.Minute))}
}

func pool(name string, addrs ...string) v1beta1.IPAddressPool {
	p := v1beta1.IPAddressPool{ObjectMeta: meta(name, 0)}
	for _, a := range addrs {
		p.Spec.Addresses = append(p.Spec.Addresses, v1beta1.AddressRange(a))
	}
	return p
}

func newer(p v1beta1.IPAddressPool, minutes int) v1beta1.IPAddressPool {
	p.CreationTimestamp = metav1.NewTime(t0.Add(time.Duration(minutes) * time.Minute))
	return p
}

func peer(name, addr string, my, their int64) v1beta1.BGPPeer {
	return v1beta1.BGPPeer{ObjectMeta: meta(name, 0), Spec: v1beta1.BGPPeerSpec{MyASN: my, PeerASN: their, PeerAddress: addr}}
}

func ptr[T any](v T) *T { return &v }

func dur(d string) *metav1.Duration {
	v, err := time.ParseDuration(d)
	if err != nil {
		panic(err)
	}
	return &metav1.Duration{Duration: v}
}

func names[T any](list []*T, name func(*T) string) []string {
	out := []string{}
	for _, x := range list {
		out = append(out, name(x))
	}
	return out
}

// want describes one expected problem; message is a substring.
type want struct {
	kind, name, field, reason, message string
	warning                            bool
}

func checkProblems(t *testing.T, got []Problem, wants []want) {
	t.Helper()
	if len(got) != len(wants) {
		t.Errorf("got %d problems, want %d:", len(got), len(wants))
		for _, p := range got {
			t.Errorf("  %v (reason %s, warning %v)", p, p.Reason, p.Warning)
		}
		return
	}
	for i, w := range wants {
		p := got[i]
		if p.Kind != w.kind || p.Name != w.name || p.Field != w.field || p.Reason != w.reason || p.Warning != w.warning || !strings.Contains(p.Message, w.message) {
			t.Errorf("problem %d = %v (reason %s, warning %v); want %s %q %s reason %s warning %v containing %q",
				i, p, p.Reason, p.Warning, w.kind, w.name, w.field, w.reason, w.warning, w.message)
		}
	}
}

func TestPools(t *testing.T) {
	withSel := pool("sel", "203.0.113.0/28")
	withSel.Spec.ServiceAllocation = &v1beta1.ServiceAllocation{
		Priority:           ptr(int32(5)),
		Namespaces:         []string{"b", "a", "b"},
		NamespaceSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"team": "x"}}},
	}
	badSel := pool("badsel", "203.0.113.0/28")
	badSel.Spec.ServiceAllocation = &v1beta1.ServiceAllocation{
		ServiceSelectors: []metav1.LabelSelector{{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "k", Operator: "Bogus"}}}},
	}
	noAuto := pool("noauto", "198.18.0.200-198.18.0.250")
	noAuto.Spec.AutoAssign = ptr(false)

	tests := []struct {
		desc      string
		pools     []v1beta1.IPAddressPool
		wantPools []string
		problems  []want
	}{
		{desc: "valid v4 CIDR, v6 CIDR and ranges", pools: []v1beta1.IPAddressPool{pool("a", "203.0.113.0/24", "2001:db8::/64", "198.18.0.10 - 198.18.0.20")}, wantPools: []string{"a"}},
		{desc: "host bits are masked", pools: []v1beta1.IPAddressPool{pool("a", "203.0.113.7/24")}, wantPools: []string{"a"}},
		{desc: "no addresses", pools: []v1beta1.IPAddressPool{pool("a")}, wantPools: []string{},
			problems: []want{{KindIPAddressPool, "a", "spec.addresses", ReasonInvalidField, "at least one address range is required", false}}},
		{desc: "not a CIDR", pools: []v1beta1.IPAddressPool{pool("a", "203.0.113.0/24", "203.0.113.999/32")}, wantPools: []string{},
			problems: []want{{KindIPAddressPool, "a", "spec.addresses[1]", ReasonInvalidField, `"203.0.113.999/32" is neither a CIDR nor a range`, false}}},
		{desc: "range with mixed families", pools: []v1beta1.IPAddressPool{pool("a", "203.0.113.1-2001:db8::1")}, wantPools: []string{},
			problems: []want{{KindIPAddressPool, "a", "spec.addresses[0]", ReasonInvalidField, "same IP family", false}}},
		{desc: "reversed v6 range", pools: []v1beta1.IPAddressPool{pool("a", "2001:db8::9-2001:db8::1")}, wantPools: []string{},
			problems: []want{{KindIPAddressPool, "a", "spec.addresses[0]", ReasonInvalidField, "first address is greater than the last", false}}},
		{desc: "bad range end", pools: []v1beta1.IPAddressPool{pool("a", "203.0.113.1-foo")}, wantPools: []string{},
			problems: []want{{KindIPAddressPool, "a", "spec.addresses[0]", ReasonInvalidField, "last address", false}}},
		{desc: "ranges overlap within one pool", pools: []v1beta1.IPAddressPool{pool("a", "203.0.113.0/24", "203.0.113.128-203.0.113.130")}, wantPools: []string{},
			problems: []want{{KindIPAddressPool, "a", "spec.addresses[1]", ReasonOverlap, "overlaps 203.0.113.0/24 (spec.addresses[0]) of the same pool", false}}},
		{desc: "two pools overlap: the newer is out, both are named",
			pools:     []v1beta1.IPAddressPool{newer(pool("new", "203.0.113.100-203.0.113.110"), 5), pool("old", "203.0.113.0/25")},
			wantPools: []string{"old"},
			problems: []want{
				{KindIPAddressPool, "new", "spec.addresses[0]", ReasonOverlap, `overlaps pool "old" (spec.addresses[0])`, false},
				{KindIPAddressPool, "old", "spec.addresses[0]", ReasonOverlap, `overlaps pool "new"`, true},
			}},
		{desc: "same age: the greater name loses",
			pools:     []v1beta1.IPAddressPool{pool("b", "2001:db8::/120"), pool("a", "2001:db8::80/121")},
			wantPools: []string{"a"},
			problems: []want{
				{KindIPAddressPool, "a", "spec.addresses[0]", ReasonOverlap, `overlaps pool "b"`, true},
				{KindIPAddressPool, "b", "spec.addresses[0]", ReasonOverlap, `overlaps pool "a"`, false},
			}},
		{desc: "adjacent pools do not overlap", pools: []v1beta1.IPAddressPool{pool("a", "203.0.113.0/25"), pool("b", "203.0.113.128/25")}, wantPools: []string{"a", "b"}},
		{desc: "a v4 and a v6 pool never overlap", pools: []v1beta1.IPAddressPool{pool("a", "10.0.0.0/8"), pool("b", "2001:db8::/32")}, wantPools: []string{"a", "b"}},
		{desc: "one overlap does not knock out a third pool",
			pools:     []v1beta1.IPAddressPool{pool("a", "203.0.113.0/24"), newer(pool("b", "203.0.113.5/32"), 1), pool("c", "198.18.0.0/24")},
			wantPools: []string{"a", "c"},
			problems: []want{
				{KindIPAddressPool, "a", "spec.addresses[0]", ReasonOverlap, `overlaps pool "b"`, true},
				{KindIPAddressPool, "b", "spec.addresses[0]", ReasonOverlap, `overlaps pool "a"`, false},
			}},
		{desc: "selectors compile, namespaces sorted", pools: []v1beta1.IPAddressPool{withSel}, wantPools: []string{"sel"}},
		{desc: "invalid service selector", pools: []v1beta1.IPAddressPool{badSel}, wantPools: []string{},
			problems: []want{{KindIPAddressPool, "badsel", "spec.serviceAllocation.serviceSelectors[0]", ReasonInvalidField, "invalid label selector", false}}},
		{desc: "autoAssign false is kept", pools: []v1beta1.IPAddressPool{noAuto}, wantPools: []string{"noauto"}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			cfg, problems := Build(Input{Pools: tc.pools}, nil)
			checkProblems(t, problems, tc.problems)
			if got := names(cfg.Pools, func(p *Pool) string { return p.Name }); !slices.Equal(got, tc.wantPools) {
				t.Errorf("pools = %v, want %v", got, tc.wantPools)
			}
		})
	}
}

func TestPoolDetails(t *testing.T) {
	sel := pool("sel", "203.0.113.0/28", "2001:db8::/126")
	sel.Labels = map[string]string{"tier": "gold"}
	sel.Spec.ServiceAllocation = &v1beta1.ServiceAllocation{
		Priority:         ptr(int32(5)),
		Namespaces:       []string{"b", "a", "b"},
		ServiceSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"app": "web"}}},
	}
	cfg, problems := Build(Input{Pools: []v1beta1.IPAddressPool{sel}}, nil)
	if len(problems) != 0 {
		t.Fatal(problems)
	}
	p := cfg.Pool("sel")
	if !p.AutoAssign || !p.HasPriority || p.Priority != 5 || !slices.Equal(p.Namespaces, []string{"a", "b"}) {
		t.Errorf("pool = %+v", p)
	}
	if len(p.V4) != 1 || len(p.V6) != 1 || p.V4[0].String() != "203.0.113.0-203.0.113.15" {
		t.Errorf("ranges v4=%v v6=%v", p.V4, p.V6)
	}
	for _, tc := range []struct {
		desc       string
		ns         string
		svcLabels  map[string]string
		wantSelect bool
	}{
		{"namespace and labels match", "a", map[string]string{"app": "web"}, true},
		{"namespace not listed", "c", map[string]string{"app": "web"}, false},
		{"labels do not match", "b", map[string]string{"app": "db"}, false},
	} {
		if got := p.Selects(tc.ns, nil, tc.svcLabels); got != tc.wantSelect {
			t.Errorf("%s: Selects = %v", tc.desc, got)
		}
	}
	for _, tc := range []struct {
		addr, pool string
	}{
		{"203.0.113.15", "sel"}, {"203.0.113.16", ""}, {"2001:db8::3", "sel"}, {"2001:db8::4", ""}, {"::ffff:203.0.113.1", "sel"},
	} {
		got := ""
		if p := cfg.PoolOf(netip.MustParseAddr(tc.addr)); p != nil {
			got = p.Name
		}
		if got != tc.pool {
			t.Errorf("PoolOf(%s) = %q, want %q", tc.addr, got, tc.pool)
		}
	}
}

func TestKeepsPreviousVersion(t *testing.T) {
	good := pool("a", "203.0.113.0/24")
	cfg1, problems := Build(Input{Pools: []v1beta1.IPAddressPool{good}, L2Advertisements: []v1beta1.L2Advertisement{{ObjectMeta: meta("l2", 0)}}}, nil)
	if len(problems) != 0 {
		t.Fatal(problems)
	}
	bad := pool("a", "203.0.113.0/33")
	cfg2, problems := Build(Input{Pools: []v1beta1.IPAddressPool{bad}}, cfg1)
	checkProblems(t, problems, []want{{KindIPAddressPool, "a", "spec.addresses[0]", ReasonInvalidField, "previous valid version stays in effect", false}})
	if !problems[0].KeptPrevious || cfg2.Pool("a") == nil || cfg2.Pool("a").V4[0].String() != "203.0.113.0-203.0.113.255" {
		t.Errorf("previous version of pool a not kept: %+v", cfg2.Pool("a"))
	}
	// A new pool that overlaps a kept pool loses, even if its name sorts first.
	intruder := newer(pool("0-intruder", "203.0.113.9/32"), -60)
	cfg3, problems := Build(Input{Pools: []v1beta1.IPAddressPool{good, intruder}}, cfg1)
	if cfg3.Pool("a") == nil || cfg3.Pool("0-intruder") != nil {
		t.Errorf("an older new pool pushed out an existing one: %v", problems)
	}
	// Without a previous snapshot, the bad object is simply left out.
	cfg4, _ := Build(Input{Pools: []v1beta1.IPAddressPool{bad}}, nil)
	if cfg4.Pool("a") != nil {
		t.Error("bad pool in effect without a previous version")
	}
}

func TestPeers(t *testing.T) {
	withSecret := peer("sec", "198.18.0.1", 64512, 64513)
	withSecret.Spec.PasswordSecret = &v1beta1.SecretRef{Name: "bgp"}
	missingSecret := peer("missing", "198.18.0.2", 64512, 64513)
	missingSecret.Spec.PasswordSecret = &v1beta1.SecretRef{Name: "nope"}
	noKey := peer("nokey", "198.18.0.3", 64512, 64513)
	noKey.Spec.PasswordSecret = &v1beta1.SecretRef{Name: "empty"}
	both := peer("both", "198.18.0.4", 64512, 64513)
	both.Spec.Password, both.Spec.PasswordSecret = "x", &v1beta1.SecretRef{Name: "bgp"}
	hold := peer("hold", "198.18.0.5", 64512, 64513)
	hold.Spec.HoldTime = dur("2s")
	hold0 := peer("hold0", "198.18.0.30", 64512, 64513)
	hold0.Spec.HoldTime = dur("0s")
	grNoGR := peer("grnogr", "198.18.0.31", 64512, 64513)
	grNoGR.Spec.GracefulRestartTime = dur("300s")
	grLong := peer("grlong", "198.18.0.32", 64512, 64513)
	grLong.Spec.EnableGracefulRestart, grLong.Spec.GracefulRestartTime = true, dur("4096s")
	grOK := peer("grok", "198.18.0.33", 64512, 64513)
	grOK.Spec.EnableGracefulRestart, grOK.Spec.GracefulRestartTime = true, dur("300s")
	keep := peer("keep", "198.18.0.6", 64512, 64513)
	keep.Spec.HoldTime, keep.Spec.KeepaliveTime = dur("9s"), dur("10s")
	bfd := peer("bfd", "198.18.0.7", 64512, 64513)
	bfd.Spec.BFDProfile = "fast"
	unknownBFD := peer("nobfd", "198.18.0.8", 64512, 64513)
	unknownBFD.Spec.BFDProfile = "slow"
	multihop := peer("mh", "198.18.0.9", 64512, 64512)
	multihop.Spec.EBGPMultiHop = true
	routerID := peer("rid", "2001:db8::1", 64512, 64513)
	routerID.Spec.RouterID = "2001:db8::2"
	src := peer("src", "2001:db8::1", 64512, 64513)
	src.Spec.SourceAddress = "198.18.0.1"
	src.Spec.NodeSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"rack": "1"}}}
	port := peer("port", "198.18.0.10", 64512, 64513)
	port.Spec.PeerPort = ptr(int32(70000))
	asn := peer("asn", "198.18.0.11", 0, 4294967296)
	addr := peer("addr", "198.18.0.300", 64512, 64513)
	dupOld := peer("dup-old", "198.18.0.20", 64512, 64513)
	dupNew := peer("dup-new", "198.18.0.20", 64512, 64514)
	dupNew.CreationTimestamp = metav1.NewTime(t0.Add(time.Hour))
	otherNodes1 := peer("rack1", "198.18.0.21", 64512, 64513)
	otherNodes1.Spec.NodeSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"rack": "1"}}}
	otherNodes2 := peer("rack2", "198.18.0.21", 64512, 64513)
	otherNodes2.Spec.NodeSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"rack": "2"}}}

	tests := []struct {
		desc     string
		peers    []v1beta1.BGPPeer
		want     []string
		problems []want
	}{
		{desc: "password from Secret", peers: []v1beta1.BGPPeer{withSecret}, want: []string{"sec"}},
		{desc: "missing Secret", peers: []v1beta1.BGPPeer{missingSecret}, want: []string{},
			problems: []want{{KindBGPPeer, "missing", "spec.passwordSecret.name", ReasonMissingSecret, `Secret "nope" does not exist`, false}}},
		{desc: "Secret without password key", peers: []v1beta1.BGPPeer{noKey}, want: []string{},
			problems: []want{{KindBGPPeer, "nokey", "spec.passwordSecret.name", ReasonMissingSecret, `no "password" key`, false}}},
		{desc: "password and passwordSecret", peers: []v1beta1.BGPPeer{both}, want: []string{},
			problems: []want{{KindBGPPeer, "both", "spec.passwordSecret", ReasonInvalidField, "mutually exclusive", false}}},
		{desc: "hold time below 3s", peers: []v1beta1.BGPPeer{hold}, want: []string{},
			problems: []want{
				{KindBGPPeer, "hold", "spec.holdTime", ReasonInvalidField, "must be at least 3s", false},
			}},
		{desc: "hold time 0 is refused, not silently 90s", peers: []v1beta1.BGPPeer{hold0}, want: []string{},
			problems: []want{{KindBGPPeer, "hold0", "spec.holdTime", ReasonInvalidField, "0 (no keepalives) is not supported", false}}},
		{desc: "graceful-restart time without graceful restart", peers: []v1beta1.BGPPeer{grNoGR}, want: []string{},
			problems: []want{{KindBGPPeer, "grnogr", "spec.gracefulRestartTime", ReasonInvalidField, "needs enableGracefulRestart", false}}},
		{desc: "graceful-restart time over 4095s", peers: []v1beta1.BGPPeer{grLong}, want: []string{},
			problems: []want{{KindBGPPeer, "grlong", "spec.gracefulRestartTime", ReasonInvalidField, "1s..4095s", false}}},
		{desc: "graceful-restart time", peers: []v1beta1.BGPPeer{grOK}, want: []string{"grok"}},
		{desc: "keepalive above hold", peers: []v1beta1.BGPPeer{keep}, want: []string{},
			problems: []want{{KindBGPPeer, "keep", "spec.keepaliveTime", ReasonInvalidField, "must be within 0..holdTime (9s)", false}}},
		{desc: "known BFD profile", peers: []v1beta1.BGPPeer{bfd}, want: []string{"bfd"}},
		{desc: "unknown BFD profile", peers: []v1beta1.BGPPeer{unknownBFD}, want: []string{},
			problems: []want{{KindBGPPeer, "nobfd", "spec.bfdProfile", ReasonUnknownReference, `BFDProfile "slow" does not exist`, false}}},
		{desc: "multihop on iBGP", peers: []v1beta1.BGPPeer{multihop}, want: []string{},
			problems: []want{{KindBGPPeer, "mh", "spec.ebgpMultiHop", ReasonInvalidField, "eBGP sessions only", false}}},
		{desc: "IPv6 router ID", peers: []v1beta1.BGPPeer{routerID}, want: []string{},
			problems: []want{{KindBGPPeer, "rid", "spec.routerID", ReasonInvalidField, "not an IPv4 address", false}}},
		{desc: "source of another family", peers: []v1beta1.BGPPeer{src}, want: []string{},
			problems: []want{{KindBGPPeer, "src", "spec.sourceAddress", ReasonInvalidField, "same IP family as peerAddress", false}}},
		{desc: "port out of range", peers: []v1beta1.BGPPeer{port}, want: []string{},
			problems: []want{{KindBGPPeer, "port", "spec.peerPort", ReasonInvalidField, "1..65535", false}}},
		{desc: "ASNs out of range", peers: []v1beta1.BGPPeer{asn}, want: []string{},
			problems: []want{
				{KindBGPPeer, "asn", "spec.myASN", ReasonInvalidField, "must be within 1..4294967295, got 0", false},
				{KindBGPPeer, "asn", "spec.peerASN", ReasonInvalidField, "got 4294967296", false},
			}},
		{desc: "bad peer address", peers: []v1beta1.BGPPeer{addr}, want: []string{},
			problems: []want{{KindBGPPeer, "addr", "spec.peerAddress", ReasonInvalidField, "not an IP address", false}}},
		{desc: "duplicate session: the newer is out", peers: []v1beta1.BGPPeer{dupNew, dupOld}, want: []string{"dup-old"},
			problems: []want{{KindBGPPeer, "dup-new", "spec.peerAddress", ReasonDuplicatePeer, `BGPPeer "dup-old" already opens a session to 198.18.0.20`, false}}},
		{desc: "same router from disjoint node sets is fine", peers: []v1beta1.BGPPeer{otherNodes1, otherNodes2}, want: []string{"rack1", "rack2"}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			cfg, problems := Build(Input{
				Peers:       tc.peers,
				BFDProfiles: []v1beta1.BFDProfile{{ObjectMeta: meta("fast", 0), Spec: v1beta1.BFDProfileSpec{ReceiveInterval: ptr(int32(100))}}},
				Secrets:     map[string]map[string][]byte{"bgp": {"password": []byte("s3cret")}, "empty": {}},
			}, nil)
			checkProblems(t, problems, tc.problems)
			if got := names(cfg.Peers, func(p *Peer) string { return p.Name }); !slices.Equal(got, tc.want) {
				t.Errorf("peers = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPeerDefaults(t *testing.T) {
	p := peer("p", "198.18.0.1", 64512, 64512)
	p.Spec.HoldTime = dur("30s")
	p.Spec.BFDProfile = "fast"
	p.Spec.Password = "pw"
	cfg, problems := Build(Input{Peers: []v1beta1.BGPPeer{p}, BFDProfiles: []v1beta1.BFDProfile{{ObjectMeta: meta("fast", 0)}}}, nil)
	if len(problems) != 0 {
		t.Fatal(problems)
	}
	got := cfg.Peers[0]
	if got.Port != 179 || got.HoldTime != 30*time.Second || got.KeepaliveTime != 10*time.Second || got.ConnectTime != 120*time.Second || !got.IBGP() || got.Password != "pw" {
		t.Errorf("peer = %+v", got)
	}
	if got.BFD == nil || got.BFD.ReceiveInterval != 300*time.Millisecond || got.BFD.DetectMultiplier != 3 || got.BFD.MinimumTTL != 254 {
		t.Errorf("BFD defaults = %+v", got.BFD)
	}
}

func TestBFDProfiles(t *testing.T) {
	cfg, problems := Build(Input{BFDProfiles: []v1beta1.BFDProfile{
		{ObjectMeta: meta("ok", 0), Spec: v1beta1.BFDProfileSpec{TransmitInterval: ptr(int32(10)), DetectMultiplier: ptr(int32(255))}},
		{ObjectMeta: meta("fast", 0), Spec: v1beta1.BFDProfileSpec{ReceiveInterval: ptr(int32(5))}},
		{ObjectMeta: meta("mult", 0), Spec: v1beta1.BFDProfileSpec{DetectMultiplier: ptr(int32(1)), MinimumTTL: ptr(int32(255))}},
		{ObjectMeta: meta("echo", 0), Spec: v1beta1.BFDProfileSpec{EchoMode: true}},
	}}, nil)
	checkProblems(t, problems, []want{
		{KindBFDProfile, "echo", "spec.echoMode", ReasonInvalidField, "is not supported", false},
		{KindBFDProfile, "fast", "spec.receiveInterval", ReasonInvalidField, "within 10..60000 milliseconds, got 5", false},
		{KindBFDProfile, "mult", "spec.detectMultiplier", ReasonInvalidField, "within 2..255, got 1", false},
		{KindBFDProfile, "mult", "spec.minimumTtl", ReasonInvalidField, "within 1..254, got 255", false},
	})
	if got := names(cfg.BFDProfiles, func(p *BFDProfile) string { return p.Name }); !slices.Equal(got, []string{"ok"}) {
		t.Errorf("profiles = %v", got)
	}
}

func TestCommunitiesAndAdvertisements(t *testing.T) {
	pools := []v1beta1.IPAddressPool{pool("a", "203.0.113.0/26"), pool("b", "203.0.113.64/26", "2001:db8::/120")}
	pools[1].Labels = map[string]string{"bgp": "yes"}
	comms := []v1beta1.Community{
		{ObjectMeta: meta("std", 0), Spec: v1beta1.CommunitySpec{Communities: []v1beta1.CommunityAlias{{Name: "no-export", Value: "65535:65281"}, {Name: "big", Value: "large:1:2:3"}}}},
		{ObjectMeta: meta("later", 5), Spec: v1beta1.CommunitySpec{Communities: []v1beta1.CommunityAlias{{Name: "no-export", Value: "65000:1"}}}},
		{ObjectMeta: meta("alias", 0), Spec: v1beta1.CommunitySpec{Communities: []v1beta1.CommunityAlias{{Name: "x", Value: "no-export"}}}},
		{ObjectMeta: meta("same", 6), Spec: v1beta1.CommunitySpec{Communities: []v1beta1.CommunityAlias{{Name: "no-export", Value: "65535:65281"}}}},
	}
	peers := []v1beta1.BGPPeer{peer("r1", "198.18.0.1", 64512, 64513), peer("r2", "198.18.0.2", 64512, 64513)}
	adv := func(name string, age int, mut func(*v1beta1.BGPAdvertisementSpec)) v1beta1.BGPAdvertisement {
		a := v1beta1.BGPAdvertisement{ObjectMeta: meta(name, age)}
		mut(&a.Spec)
		return a
	}
	tests := []struct {
		desc     string
		advs     []v1beta1.BGPAdvertisement
		want     []string
		problems []want
		check    func(t *testing.T, cfg *Config)
	}{
		{desc: "communities resolved, sorted, deduplicated; pools by selector",
			advs: []v1beta1.BGPAdvertisement{adv("ok", 0, func(s *v1beta1.BGPAdvertisementSpec) {
				s.IPAddressPoolSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"bgp": "yes"}}}
				s.Communities = []v1beta1.CommunityValue{"big", "65000:2", "no-export", "65535:65281"}
				s.LocalPref = ptr(int64(200))
				s.AggregationLength = ptr(int32(26))
			})},
			want: []string{"ok"},
			check: func(t *testing.T, cfg *Config) {
				a := cfg.BGPAdvertisements[0]
				var cs []string
				for _, c := range a.Communities {
					cs = append(cs, c.String())
				}
				if !slices.Equal(cs, []string{"65000:2", "65535:65281", "large:1:2:3"}) || !slices.Equal(a.Pools, []string{"b"}) ||
					!a.HasLocalPref || a.LocalPref != 200 || a.AggregationLength != 26 || a.AggregationLengthV6 != 128 {
					t.Errorf("advertisement = %+v, communities %v", a, cs)
				}
			}},
		{desc: "no pool named or selected means every pool", advs: []v1beta1.BGPAdvertisement{adv("all", 0, func(*v1beta1.BGPAdvertisementSpec) {})}, want: []string{"all"},
			check: func(t *testing.T, cfg *Config) {
				if !slices.Equal(cfg.BGPAdvertisements[0].Pools, []string{"a", "b"}) {
					t.Errorf("pools = %v", cfg.BGPAdvertisements[0].Pools)
				}
			}},
		{desc: "unknown pool", advs: []v1beta1.BGPAdvertisement{adv("x", 0, func(s *v1beta1.BGPAdvertisementSpec) { s.IPAddressPools = []string{"a", "zzz"} })}, want: []string{},
			problems: []want{{KindBGPAdvertisement, "x", "spec.ipAddressPools[1]", ReasonUnknownReference, `IPAddressPool "zzz" does not exist`, false}}},
		{desc: "unknown community alias", advs: []v1beta1.BGPAdvertisement{adv("x", 0, func(s *v1beta1.BGPAdvertisementSpec) { s.Communities = []v1beta1.CommunityValue{"nope"} })}, want: []string{},
			problems: []want{{KindBGPAdvertisement, "x", "spec.communities[0]", ReasonUnknownReference, `alias "nope" is not defined`, false}}},
		{desc: "malformed community", advs: []v1beta1.BGPAdvertisement{adv("x", 0, func(s *v1beta1.BGPAdvertisementSpec) { s.Communities = []v1beta1.CommunityValue{"65536:1"} })}, want: []string{},
			problems: []want{{KindBGPAdvertisement, "x", "spec.communities[0]", ReasonInvalidField, "within 0..65535", false}}},
		{desc: "unknown peer", advs: []v1beta1.BGPAdvertisement{adv("x", 0, func(s *v1beta1.BGPAdvertisementSpec) { s.Peers = []string{"r9"} })}, want: []string{},
			problems: []want{{KindBGPAdvertisement, "x", "spec.peers[0]", ReasonUnknownReference, `BGPPeer "r9" does not exist`, false}}},
		{desc: "aggregation shorter than the pool's prefix", advs: []v1beta1.BGPAdvertisement{adv("x", 0, func(s *v1beta1.BGPAdvertisementSpec) {
			s.IPAddressPools = []string{"b"}
			s.AggregationLength, s.AggregationLengthV6 = ptr(int32(24)), ptr(int32(112))
		})}, want: []string{},
			problems: []want{
				{KindBGPAdvertisement, "x", "spec.aggregationLength", ReasonAggregationTooWide, "24 is shorter than the prefix length of 203.0.113.64/26", false},
				{KindBGPAdvertisement, "x", "spec.aggregationLengthV6", ReasonAggregationTooWide, "112 is shorter than the prefix length of 2001:db8::/120", false},
			}},
		{desc: "aggregation length out of range", advs: []v1beta1.BGPAdvertisement{adv("x", 0, func(s *v1beta1.BGPAdvertisementSpec) { s.AggregationLength = ptr(int32(33)) })}, want: []string{},
			problems: []want{{KindBGPAdvertisement, "x", "spec.aggregationLength", ReasonInvalidField, "within 0..32, got 33", false}}},
		{desc: "conflicting localPref: the newer is out", advs: []v1beta1.BGPAdvertisement{
			adv("first", 0, func(s *v1beta1.BGPAdvertisementSpec) { s.IPAddressPools = []string{"a"}; s.LocalPref = ptr(int64(100)) }),
			adv("second", 1, func(s *v1beta1.BGPAdvertisementSpec) {
				s.IPAddressPools = []string{"a"}
				s.LocalPref = ptr(int64(200))
				s.Peers = []string{"r1"}
			}),
		}, want: []string{"first"},
			problems: []want{{KindBGPAdvertisement, "second", "spec.localPref", ReasonLocalPrefConflict, `conflicts with BGPAdvertisement "first" (localPref 100) for pool "a"`, false}}},
		{desc: "different localPref to disjoint peers is fine", advs: []v1beta1.BGPAdvertisement{
			adv("first", 0, func(s *v1beta1.BGPAdvertisementSpec) {
				s.IPAddressPools = []string{"a"}
				s.LocalPref = ptr(int64(100))
				s.Peers = []string{"r2"}
			}),
			adv("second", 1, func(s *v1beta1.BGPAdvertisementSpec) {
				s.IPAddressPools = []string{"a"}
				s.LocalPref = ptr(int64(200))
				s.Peers = []string{"r1"}
			}),
		}, want: []string{"first", "second"}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			cfg, problems := Build(Input{Pools: pools, Communities: comms, Peers: peers, BGPAdvertisements: tc.advs}, nil)
			// The Community objects' own problems are tested in TestCommunityObjects.
			var rest []Problem
			for _, p := range problems {
				if p.Kind != KindCommunity {
					rest = append(rest, p)
				}
			}
			checkProblems(t, rest, tc.problems)
			if got := names(cfg.BGPAdvertisements, func(a *BGPAdvertisement) string { return a.Name }); !slices.Equal(got, tc.want) {
				t.Errorf("advertisements = %v, want %v", got, tc.want)
			}
			if tc.check != nil {
				tc.check(t, cfg)
			}
		})
	}
}

func TestCommunityObjects(t *testing.T) {
	comms := []v1beta1.Community{
		{ObjectMeta: meta("std", 0), Spec: v1beta1.CommunitySpec{Communities: []v1beta1.CommunityAlias{{Name: "no-export", Value: "65535:65281"}}}},
		{ObjectMeta: meta("later", 5), Spec: v1beta1.CommunitySpec{Communities: []v1beta1.CommunityAlias{{Name: "no-export", Value: "65000:1"}}}},
		{ObjectMeta: meta("alias", 0), Spec: v1beta1.CommunitySpec{Communities: []v1beta1.CommunityAlias{{Name: "x", Value: "no-export"}}}},
		{ObjectMeta: meta("same", 6), Spec: v1beta1.CommunitySpec{Communities: []v1beta1.CommunityAlias{{Name: "no-export", Value: "65535:65281"}}}},
		{ObjectMeta: meta("badname", 0), Spec: v1beta1.CommunitySpec{Communities: []v1beta1.CommunityAlias{{Name: "Bad_Name", Value: "1:1"}}}},
	}
	cfg, problems := Build(Input{Communities: comms}, nil)
	checkProblems(t, problems, []want{
		{KindCommunity, "alias", "spec.communities[0].value", ReasonInvalidField, `"no-export" is an alias name`, false},
		{KindCommunity, "badname", "spec.communities[0].name", ReasonInvalidField, `"Bad_Name" is not a valid alias name`, false},
		{KindCommunity, "later", "spec.communities[0].name", ReasonDuplicateAlias, `alias "no-export" is already defined with value 65535:65281 by Community "std"`, false},
	})
	if c := cfg.Communities["no-export"]; c.String() != "65535:65281" || len(cfg.Communities) != 1 {
		t.Errorf("communities = %v", cfg.Communities)
	}
}

func TestL2Advertisements(t *testing.T) {
	pools := []v1beta1.IPAddressPool{pool("a", "198.18.0.200-198.18.0.250"), pool("b", "2001:db8::/120")}
	cfg, problems := Build(Input{Pools: pools, L2Advertisements: []v1beta1.L2Advertisement{
		{ObjectMeta: meta("ok", 0), Spec: v1beta1.L2AdvertisementSpec{IPAddressPools: []string{"b"}, Interfaces: []string{"eth1", "eth0", "eth1"},
			NodeSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"l2": "yes"}}}}},
		{ObjectMeta: meta("badif", 0), Spec: v1beta1.L2AdvertisementSpec{Interfaces: []string{"a/b"}}},
		{ObjectMeta: meta("badsel", 0), Spec: v1beta1.L2AdvertisementSpec{NodeSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"bad key!": "x"}}}}},
		{ObjectMeta: meta("ghost", 0), Spec: v1beta1.L2AdvertisementSpec{IPAddressPools: []string{"ghost"}}},
	}}, nil)
	checkProblems(t, problems, []want{
		{KindL2Advertisement, "badif", "spec.interfaces[0]", ReasonInvalidField, `"a/b" is not a valid interface name`, false},
		{KindL2Advertisement, "badsel", "spec.nodeSelectors[0]", ReasonInvalidField, "invalid label selector", false},
		{KindL2Advertisement, "ghost", "spec.ipAddressPools[0]", ReasonUnknownReference, `IPAddressPool "ghost" does not exist`, false},
	})
	if len(cfg.L2Advertisements) != 1 {
		t.Fatalf("advertisements = %v", cfg.L2Advertisements)
	}
	a := cfg.L2Advertisements[0]
	if a.Name != "ok" || !slices.Equal(a.Pools, []string{"b"}) || !slices.Equal(a.Interfaces, []string{"eth0", "eth1"}) || len(a.NodeSelectors) != 1 {
		t.Errorf("advertisement = %+v", a)
	}
}

func TestDeterministic(t *testing.T) {
	in := benchInput(50, 50, 20)
	want, wantProblems := Build(in, nil)
	for i := range 5 {
		slices.Reverse(in.Pools)
		slices.Reverse(in.BGPAdvertisements)
		slices.Reverse(in.Peers)
		if got, problems := Build(in, nil); !reflect.DeepEqual(got, want) || !reflect.DeepEqual(problems, wantProblems) {
			t.Fatalf("run %d: snapshot depends on input order", i)
		}
	}
}

func TestParseCommunity(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    string
		isAlias bool
		err     string
	}{
		{in: "65000:100", want: "65000:100"},
		{in: "0:0", want: "0:0"},
		{in: "large:4294967295:0:1", want: "large:4294967295:0:1"},
		{in: "no-export", isAlias: true},
		{in: "65536:1", err: "within 0..65535"},
		{in: "large:1:2", err: "must be like"},
		{in: "large:1:2:4294967296", err: "part 3 must be within"},
		{in: "-x", err: "must be like"},
		{in: "", err: "must be like"},
	} {
		c, isAlias, err := ParseCommunity(tc.in)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseCommunity(%q) error = %v, want %q", tc.in, err, tc.err)
			}
		case err != nil || isAlias != tc.isAlias || (!isAlias && c.String() != tc.want):
			t.Errorf("ParseCommunity(%q) = %v, %v, %v", tc.in, c, isAlias, err)
		}
	}
}

// TestOverlapRules checks the deterministic overlap rules: a pool not in
// effect excludes nothing, and an edit that would overlap keeps the
// previous version in effect rather than dropping the pool.
func TestOverlapRules(t *testing.T) {
	a := pool("a", "172.20.0.0/16")
	b := newer(pool("b", "172.16.0.0/12"), 1)
	c := newer(pool("c", "172.16.1.0/24"), 2)
	d := newer(pool("d", "172.30.1.0/24"), 3)
	in := Input{Pools: []v1beta1.IPAddressPool{d, c, b, a}}
	cfg, _ := Build(in, nil)
	if got := names(cfg.Pools, func(p *Pool) string { return p.Name }); !slices.Equal(got, []string{"a", "c", "d"}) {
		t.Errorf("fresh: pools in effect = %v, want [a c d] (b loses to the older a; c and d overlap only b, which is out)", got)
	}
	again, _ := Build(in, cfg)
	if got := names(again.Pools, func(p *Pool) string { return p.Name }); !slices.Equal(got, []string{"a", "c", "d"}) {
		t.Errorf("with the previous snapshot: pools in effect = %v, want the same [a c d]", got)
	}

	// Edit c so one new range touches a: c keeps its previous ranges.
	edited := c
	edited.Spec.Addresses = []v1beta1.AddressRange{"172.16.1.0/24", "172.20.5.0/24"}
	cfg2, problems := Build(Input{Pools: []v1beta1.IPAddressPool{a, b, edited, d}}, cfg)
	pc := cfg2.Pool("c")
	if pc == nil || len(pc.V4) != 1 || pc.V4[0].String() != "172.16.1.0-172.16.1.255" {
		t.Fatalf("edited pool c: %+v, want its previous range only", pc)
	}
	checkProblems(t, problems, []want{
		{KindIPAddressPool, "a", "spec.addresses[0]", ReasonOverlap, `overlaps pool "b"`, true},
		{KindIPAddressPool, "a", "spec.addresses[0]", ReasonOverlap, `overlaps pool "c"`, true},
		{KindIPAddressPool, "b", "spec.addresses[0]", ReasonOverlap, `overlaps pool "a"`, false},
		{KindIPAddressPool, "c", "spec.addresses[1]", ReasonOverlap, "the previous valid version stays in effect", false},
	})
	for _, p := range problems {
		if p.Name == "c" && !p.KeptPrevious {
			t.Errorf("c's problem does not say it kept its previous version: %+v", p)
		}
	}
}

// TestPeerDesigns checks the data-centre designs: dynamic ASN, unnumbered
// (interface), passive and VRF sessions, and the combinations refused.
func TestPeerDesigns(t *testing.T) {
	mk := func(name string, f func(s *v1beta1.BGPPeerSpec)) v1beta1.BGPPeer {
		p := peer(name, "198.18.0.1", 64512, 64513)
		f(&p.Spec)
		return p
	}
	tests := []struct {
		desc     string
		peer     v1beta1.BGPPeer
		check    func(*Peer) bool
		problems []want
	}{
		{desc: "dynamic external", peer: mk("dyn", func(s *v1beta1.BGPPeerSpec) { s.PeerASN, s.DynamicASN = 0, "external" }),
			check: func(p *Peer) bool { return p.DynamicASN == DynamicExternal && p.PeerASN == 0 && !p.IBGP() }},
		{desc: "dynamic internal", peer: mk("dyn", func(s *v1beta1.BGPPeerSpec) { s.PeerASN, s.DynamicASN = 0, "internal" }),
			check: func(p *Peer) bool { return p.DynamicASN == DynamicInternal && p.IBGP() }},
		{desc: "peerASN and dynamicASN", peer: mk("both", func(s *v1beta1.BGPPeerSpec) { s.DynamicASN = "external" }),
			problems: []want{{KindBGPPeer, "both", "spec.dynamicASN", ReasonInvalidField, "exactly one of peerASN and dynamicASN", false}}},
		{desc: "neither peerASN nor dynamicASN", peer: mk("none", func(s *v1beta1.BGPPeerSpec) { s.PeerASN = 0 }),
			problems: []want{{KindBGPPeer, "none", "spec.peerASN", ReasonInvalidField, "got 0", false}}},
		{desc: "unknown dynamicASN", peer: mk("bad", func(s *v1beta1.BGPPeerSpec) { s.PeerASN, s.DynamicASN = 0, "any" }),
			problems: []want{{KindBGPPeer, "bad", "spec.dynamicASN", ReasonInvalidField, `got "any"`, false}}},
		{desc: "multihop with dynamic internal", peer: mk("mh", func(s *v1beta1.BGPPeerSpec) { s.PeerASN, s.DynamicASN, s.EBGPMultiHop = 0, "internal", true }),
			problems: []want{{KindBGPPeer, "mh", "spec.ebgpMultiHop", ReasonInvalidField, "dynamicASN is internal", false}}},
		{desc: "unnumbered", peer: mk("un", func(s *v1beta1.BGPPeerSpec) { s.PeerAddress, s.Interface = "", "eth1" }),
			check: func(p *Peer) bool { return p.Interface == "eth1" && !p.Address.IsValid() }},
		{desc: "peerAddress and interface", peer: mk("both", func(s *v1beta1.BGPPeerSpec) { s.Interface = "eth1" }),
			problems: []want{{KindBGPPeer, "both", "spec.interface", ReasonInvalidField, "exactly one of peerAddress and interface", false}}},
		{desc: "bad interface name", peer: mk("bad", func(s *v1beta1.BGPPeerSpec) { s.PeerAddress, s.Interface = "", "eth1/x" }),
			problems: []want{{KindBGPPeer, "bad", "spec.interface", ReasonInvalidField, "not a network device name", false}}},
		{desc: "sourceAddress with interface", peer: mk("src", func(s *v1beta1.BGPPeerSpec) { s.PeerAddress, s.Interface, s.SourceAddress = "", "eth1", "198.18.0.11" }),
			problems: []want{{KindBGPPeer, "src", "spec.sourceAddress", ReasonInvalidField, "cannot be set with interface", false}}},
		{desc: "multihop with interface", peer: mk("mh", func(s *v1beta1.BGPPeerSpec) { s.PeerAddress, s.Interface, s.EBGPMultiHop = "", "eth1", true }),
			problems: []want{{KindBGPPeer, "mh", "spec.ebgpMultiHop", ReasonInvalidField, "cannot be set with interface", false}}},
		{desc: "BFD with interface", peer: mk("bfd", func(s *v1beta1.BGPPeerSpec) { s.PeerAddress, s.Interface, s.BFDProfile = "", "eth1", "fast" }),
			problems: []want{{KindBGPPeer, "bfd", "spec.bfdProfile", ReasonInvalidField, "not supported with interface or vrf", false}}},
		{desc: "BFD with VRF", peer: mk("bfd", func(s *v1beta1.BGPPeerSpec) { s.VRF, s.BFDProfile = "red", "fast" }),
			problems: []want{{KindBGPPeer, "bfd", "spec.bfdProfile", ReasonInvalidField, "not supported with interface or vrf", false}}},
		{desc: "passive in a VRF", peer: mk("pv", func(s *v1beta1.BGPPeerSpec) { s.Passive, s.VRF = true, "red" }),
			check: func(p *Peer) bool { return p.Passive && p.VRF == "red" }},
		{desc: "bad VRF name", peer: mk("bad", func(s *v1beta1.BGPPeerSpec) { s.VRF = "a very long vrf name" }),
			problems: []want{{KindBGPPeer, "bad", "spec.vrf", ReasonInvalidField, "not a network device name", false}}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			cfg, problems := Build(Input{Peers: []v1beta1.BGPPeer{tc.peer},
				BFDProfiles: []v1beta1.BFDProfile{{ObjectMeta: meta("fast", 0)}}}, nil)
			checkProblems(t, problems, tc.problems)
			if tc.check == nil {
				if len(cfg.Peers) != 0 {
					t.Errorf("peer in effect: %+v", cfg.Peers[0])
				}
				return
			}
			if len(cfg.Peers) != 1 || !tc.check(cfg.Peers[0]) {
				t.Errorf("peers = %+v", cfg.Peers)
			}
		})
	}

	// Two unnumbered peers on one interface from the same nodes are one
	// session: the newer is out.
	a := mk("a", func(s *v1beta1.BGPPeerSpec) { s.PeerAddress, s.Interface = "", "eth1" })
	b := mk("b", func(s *v1beta1.BGPPeerSpec) { s.PeerAddress, s.Interface = "", "eth1" })
	b.CreationTimestamp = metav1.NewTime(t0.Add(time.Hour))
	c := mk("c", func(s *v1beta1.BGPPeerSpec) { s.PeerAddress, s.Interface = "", "eth2" })
	cfg, problems := Build(Input{Peers: []v1beta1.BGPPeer{a, b, c}}, nil)
	checkProblems(t, problems, []want{{KindBGPPeer, "b", "spec.interface", ReasonDuplicatePeer, `BGPPeer "a" already opens a session to interface eth1`, false}})
	if got := names(cfg.Peers, func(p *Peer) string { return p.Name }); !slices.Equal(got, []string{"a", "c"}) {
		t.Errorf("peers = %v", got)
	}
}
