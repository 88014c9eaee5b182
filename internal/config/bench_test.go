package config

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/heraldlb/herald/api/v1beta1"
)

// benchInput builds nPools pools (each a /26, alternating with IPv6 /120s
// and selectors), nAdvs advertisements (half L2, half BGP) and nPeers peers.
func benchInput(nPools, nAdvs, nPeers int) Input {
	var in Input
	for i := range nPools {
		p := pool(fmt.Sprintf("pool-%04d", i),
			fmt.Sprintf("198.18.%d.%d/26", i/4, (i%4)*64),
			fmt.Sprintf("2001:db8:%x::/120", i))
		p.Labels = map[string]string{"group": fmt.Sprint(i % 10)}
		p.Spec.ServiceAllocation = &v1beta1.ServiceAllocation{
			Priority:           ptr(int32(i % 7)),
			NamespaceSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"team": fmt.Sprint(i % 13)}}},
		}
		in.Pools = append(in.Pools, p)
	}
	in.Communities = []v1beta1.Community{{ObjectMeta: meta("c", 0), Spec: v1beta1.CommunitySpec{Communities: []v1beta1.CommunityAlias{{Name: "no-export", Value: "65535:65281"}}}}}
	for i := range nPeers {
		in.Peers = append(in.Peers, peer(fmt.Sprintf("peer-%03d", i), fmt.Sprintf("198.19.%d.%d", i/250, i%250+1), 64512, 64513))
	}
	for i := range nAdvs / 2 {
		in.L2Advertisements = append(in.L2Advertisements, v1beta1.L2Advertisement{ObjectMeta: meta(fmt.Sprintf("l2-%04d", i), 0),
			Spec: v1beta1.L2AdvertisementSpec{IPAddressPools: []string{fmt.Sprintf("pool-%04d", i%nPools)}, Interfaces: []string{"eth0"}}})
		in.BGPAdvertisements = append(in.BGPAdvertisements, v1beta1.BGPAdvertisement{ObjectMeta: meta(fmt.Sprintf("bgp-%04d", i), 0),
			Spec: v1beta1.BGPAdvertisementSpec{
				IPAddressPoolSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"group": fmt.Sprint(i % 10)}}},
				Communities:            []v1beta1.CommunityValue{"no-export", "65000:1"},
				Peers:                  []string{fmt.Sprintf("peer-%03d", i%nPeers)},
				AggregationLength:      ptr(int32(32)),
			}})
	}
	return in
}

// BenchmarkBuild parses 1,000 pools, 1,000 advertisements and 200 peers;
// the target is under 50 ms per snapshot on the project's 2-core machine.
func BenchmarkBuild(b *testing.B) {
	in := benchInput(1000, 1000, 200)
	start := time.Now()
	for b.Loop() {
		if _, problems := Build(in, nil); len(problems) != 0 {
			b.Fatal(problems[0])
		}
	}
	b.ReportMetric(float64(time.Since(start).Milliseconds())/float64(b.N), "ms/snapshot")
}
