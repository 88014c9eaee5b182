package config

import (
	"slices"
	"testing"

	"go4.org/netipx"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/heraldlb/herald/api/v1beta1"
)

func FuzzParseAddressRange(f *testing.F) {
	for _, s := range []string{"203.0.113.0/24", "2001:db8::/64", "1.2.3.4-1.2.3.9", "::ffff:1.2.3.4/120", "a-b", "-", "1.2.3.4-::1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseAddressRange(s)
		if err != nil {
			return
		}
		if !r.IsValid() || r.To().Less(r.From()) || r.From().BitLen() != r.To().BitLen() {
			t.Fatalf("%q parsed to invalid range %v", s, r)
		}
	})
}

func FuzzParseCommunity(f *testing.F) {
	for _, s := range []string{"65000:100", "large:1:2:3", "no-export", "1:2:3", "large::1:2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, isAlias, err := ParseCommunity(s)
		if err != nil || isAlias {
			return
		}
		// A parsed value prints back to a form that parses to the same value.
		c2, _, err := ParseCommunity(c.String())
		if err != nil || c2 != c {
			t.Fatalf("%q -> %v -> %v, %v", s, c, c2, err)
		}
	})
}

// FuzzBuild feeds arbitrary field values to the snapshot builder: it must
// never panic, and every pool it keeps must be valid and overlap no other.
func FuzzBuild(f *testing.F) {
	f.Add("203.0.113.0/24", "203.0.113.10-203.0.113.20", "2001:db8::/64", "65000:1", "198.18.0.1", int64(64512), int32(24), "90s")
	f.Add("::/0", "0.0.0.0/0", "x", "large:1:2:3", "::1", int64(0), int32(-1), "1s")
	f.Fuzz(func(t *testing.T, a1, a2, a3, comm, peerAddr string, asn int64, agg int32, hold string) {
		var d metav1.Duration
		_ = d.UnmarshalJSON([]byte(`"` + hold + `"`))
		in := Input{
			Pools: []v1beta1.IPAddressPool{pool("p1", a1, a2), pool("p2", a3), pool("p3", a2)},
			Peers: []v1beta1.BGPPeer{{ObjectMeta: meta("peer", 0), Spec: v1beta1.BGPPeerSpec{MyASN: asn, PeerASN: asn + 1, PeerAddress: peerAddr, HoldTime: &d, BFDProfile: comm}}},
			BGPAdvertisements: []v1beta1.BGPAdvertisement{{ObjectMeta: meta("adv", 0), Spec: v1beta1.BGPAdvertisementSpec{
				AggregationLength: &agg, AggregationLengthV6: &agg, Communities: []v1beta1.CommunityValue{v1beta1.CommunityValue(comm)}, Peers: []string{"peer"},
			}}},
			Communities: []v1beta1.Community{{ObjectMeta: meta("c", 0), Spec: v1beta1.CommunitySpec{Communities: []v1beta1.CommunityAlias{{Name: comm, Value: v1beta1.CommunityValue(comm)}}}}},
		}
		cfg, _ := Build(in, nil)
		cfg2, _ := Build(in, cfg)
		for _, c := range []*Config{cfg, cfg2} {
			var all []netipx.IPRange
			for _, p := range c.Pools {
				all = append(append(all, p.V4...), p.V6...)
			}
			slices.SortFunc(all, func(x, y netipx.IPRange) int { return x.From().Compare(y.From()) })
			for i := 1; i < len(all); i++ {
				if all[i-1].To().BitLen() == all[i].From().BitLen() && !all[i-1].To().Less(all[i].From()) {
					t.Fatalf("kept pools overlap: %v and %v", all[i-1], all[i])
				}
			}
		}
	})
}
