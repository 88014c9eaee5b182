package e2etest

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// TestCRDValidation proves that the shipped CRDs' OpenAPI schemas and CEL
// rules compile and bite: the real API server accepts valid objects and
// rejects invalid ones with a message that names the field.
func TestCRDValidation(t *testing.T) {
	needRoot(t)
	bed := controllerBed(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	const (
		pool  = "apiVersion: herald.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\nspec: "
		peer  = "apiVersion: herald.io/v1beta1\nkind: BGPPeer\nmetadata: {name: p}\nspec: "
		adv   = "apiVersion: herald.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: a}\nspec: "
		l2    = "apiVersion: herald.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: a}\nspec: "
		bfd   = "apiVersion: herald.io/v1beta1\nkind: BFDProfile\nmetadata: {name: b}\nspec: "
		comm  = "apiVersion: herald.io/v1beta1\nkind: Community\nmetadata: {name: c}\nspec: "
		okPer = `{myASN: 64512, peerASN: 64513, peerAddress: "198.18.0.1"`
	)
	valid := []struct{ desc, yaml string }{
		{"pool with CIDRs and ranges of both families", pool + `{addresses: ["203.0.113.0/24", "198.18.0.10-198.18.0.20", "2001:db8::/64", "2001:db8:1::1 - 2001:db8:1::9"]}`},
		{"pool with a selecting serviceAllocation", pool + `{addresses: ["203.0.113.0/24"], serviceAllocation: {priority: 0, namespaces: [a]}}`},
		{"peer with every timer", peer + okPer + `, holdTime: 9s, keepaliveTime: 3s, connectTime: 5s, routerID: "198.18.0.10", ebgpMultiHop: true, passwordSecret: {name: s}}`},
		{"iBGP peer over IPv6", peer + `{myASN: 64512, peerASN: 64512, peerAddress: "2001:db8::1", sourceAddress: "2001:db8::2", holdTime: 3s}`},
		{"peer with graceful restart time and disableMP", peer + okPer + `, enableGracefulRestart: true, gracefulRestartTime: 4095s, disableMP: true}`},
		{"unnumbered peer with a dynamic ASN", peer + `{myASN: 64512, dynamicASN: external, interface: eth1}`},
		{"passive iBGP peer in a VRF", peer + `{myASN: 64512, dynamicASN: internal, peerAddress: "198.18.0.1", passive: true, vrf: tenant-a}`},
		{"advertisement", adv + `{aggregationLength: 24, aggregationLengthV6: 64, localPref: 4294967295, communities: ["65535:65281", "large:4294967295:0:1", "no-export"]}`},
		{"L2 advertisement", l2 + `{ipAddressPools: [p], interfaces: [eth0, "bond0.100"]}`},
		{"BFD profile at the limits", bfd + `{receiveInterval: 10, transmitInterval: 60000, detectMultiplier: 255, minimumTtl: 1}`},
		{"community aliases", comm + `{communities: [{name: no-export, value: "65535:65281"}, {name: big, value: "large:1:2:3"}]}`},
	}
	for _, tc := range valid {
		t.Run("valid/"+tc.desc, func(t *testing.T) {
			if _, err := bed.Apply(ctx, object(t, tc.yaml)); err != nil {
				t.Fatalf("valid object refused: %v", err)
			}
		})
	}

	invalid := []struct {
		desc, yaml string
		// want are substrings of the API server's answer; the first names
		// the field.
		want []string
	}{
		{"pool without addresses", pool + `{addresses: []}`, []string{"spec.addresses", "at least 1"}},
		{"prefix length out of range", pool + `{addresses: ["203.0.113.0/33"]}`, []string{"spec.addresses[0]", "must be a CIDR"}},
		{"not an address at all", pool + `{addresses: ["example.com"]}`, []string{"spec.addresses[0]", "must be a CIDR"}},
		{"range end is not an address", pool + `{addresses: ["203.0.113.1-203.0.113.x"]}`, []string{"spec.addresses[0]", "two IP addresses joined by '-'"}},
		{"range of mixed families", pool + `{addresses: ["203.0.113.1-2001:db8::1"]}`, []string{"spec.addresses[0]", "same IP family"}},
		{"reversed IPv4 range", pool + `{addresses: ["203.0.113.20-203.0.113.10"]}`, []string{"spec.addresses[0]", "must not be greater than the last"}},
		{"three-part range", pool + `{addresses: ["203.0.113.1-203.0.113.2-203.0.113.3"]}`, []string{"spec.addresses[0]", "two IP addresses"}},
		{"negative priority", pool + `{addresses: ["203.0.113.0/24"], serviceAllocation: {priority: -1}}`, []string{"spec.serviceAllocation.priority", "greater than or equal to 0"}},
		{"ASN zero", peer + `{myASN: 0, peerASN: 64513, peerAddress: "198.18.0.1"}`, []string{"spec.myASN", "greater than or equal to 1"}},
		{"ASN beyond 32 bits", peer + `{myASN: 64512, peerASN: 4294967296, peerAddress: "198.18.0.1"}`, []string{"spec.peerASN", "less than or equal to 4294967295"}},
		{"peer address not an IP", peer + `{myASN: 64512, peerASN: 64513, peerAddress: "router.example"}`, []string{"spec.peerAddress", "must be an IPv4 or IPv6 address"}},
		{"hold time below 3s", peer + okPer + `, holdTime: 2s}`, []string{"spec.holdTime", "at least 3s"}},
		{"hold time 0", peer + okPer + `, holdTime: 0s}`, []string{"spec.holdTime", "0, no keepalives, is not supported"}},
		{"graceful restart time without graceful restart", peer + okPer + `, gracefulRestartTime: 300s}`, []string{"spec.gracefulRestartTime", "needs enableGracefulRestart"}},
		{"graceful restart time above 4095s", peer + okPer + `, enableGracefulRestart: true, gracefulRestartTime: 4096s}`, []string{"spec.gracefulRestartTime", "1s..4095s"}},
		{"BFD echo mode", bfd + `{echoMode: true}`, []string{"spec.echoMode", "not supported"}},
		{"keepalive above hold", peer + okPer + `, holdTime: 9s, keepaliveTime: 10s}`, []string{"spec.keepaliveTime", "must not be greater than holdTime"}},
		{"malformed duration", peer + okPer + `, holdTime: "ninety"}`, []string{"spec.holdTime", "should match"}},
		{"password and passwordSecret", peer + okPer + `, password: x, passwordSecret: {name: s}}`, []string{"spec.passwordSecret", "mutually exclusive"}},
		{"source of the other family", peer + okPer + `, sourceAddress: "2001:db8::1"}`, []string{"spec.sourceAddress", "same IP family as peerAddress"}},
		{"IPv6 router ID", peer + okPer + `, routerID: "2001:db8::1"}`, []string{"spec.routerID", "must be an IPv4 address"}},
		{"multihop on iBGP", peer + `{myASN: 64512, peerASN: 64512, peerAddress: "198.18.0.1", ebgpMultiHop: true}`, []string{"spec.ebgpMultiHop", "eBGP sessions only"}},
		{"port zero", peer + okPer + `, peerPort: 0}`, []string{"spec.peerPort", "greater than or equal to 1"}},
		{"peerASN and dynamicASN", peer + okPer + `, dynamicASN: external}`, []string{"set exactly one of peerASN and dynamicASN"}},
		{"neither peerASN nor dynamicASN", peer + `{myASN: 64512, peerAddress: "198.18.0.1"}`, []string{"set exactly one of peerASN and dynamicASN"}},
		{"unknown dynamicASN", peer + `{myASN: 64512, dynamicASN: any, peerAddress: "198.18.0.1"}`, []string{"spec.dynamicASN", "supported values"}},
		{"peerAddress and interface", peer + okPer + `, interface: eth1}`, []string{"set exactly one of peerAddress and interface"}},
		{"sourceAddress with interface", peer + `{myASN: 64512, peerASN: 64513, interface: eth1, sourceAddress: "198.18.0.2"}`, []string{"spec.sourceAddress", "cannot be set with interface"}},
		{"multihop with interface", peer + `{myASN: 64512, peerASN: 64513, interface: eth1, ebgpMultiHop: true}`, []string{"spec.ebgpMultiHop", "unnumbered session is one hop"}},
		{"BFD in a VRF", peer + okPer + `, vrf: red, bfdProfile: fast}`, []string{"spec.bfdProfile", "not supported with interface or vrf"}},
		{"interface name with a slash in a peer", peer + `{myASN: 64512, peerASN: 64513, interface: "eth0/1"}`, []string{"spec.interface", "should match"}},
		{"IPv4 aggregation above 32", adv + `{aggregationLength: 33}`, []string{"spec.aggregationLength", "less than or equal to 32"}},
		{"IPv6 aggregation above 128", adv + `{aggregationLengthV6: 129}`, []string{"spec.aggregationLengthV6", "less than or equal to 128"}},
		{"standard community half above 65535", adv + `{communities: ["65536:1"]}`, []string{"spec.communities[0]", "within 0..65535"}},
		{"large community part above 32 bits", adv + `{communities: ["large:1:2:4294967296"]}`, []string{"spec.communities[0]", "within 0..4294967295"}},
		{"community neither value nor alias", adv + `{communities: ["No_Export!"]}`, []string{"spec.communities[0]", "name of a Community alias"}},
		{"negative localPref", adv + `{localPref: -1}`, []string{"spec.localPref", "greater than or equal to 0"}},
		{"interface name with a slash", l2 + `{interfaces: ["eth0/1"]}`, []string{"spec.interfaces[0]", "should match"}},
		{"BFD interval below 10 ms", bfd + `{receiveInterval: 5}`, []string{"spec.receiveInterval", "greater than or equal to 10"}},
		{"BFD interval above 60 s", bfd + `{transmitInterval: 60001}`, []string{"spec.transmitInterval", "less than or equal to 60000"}},
		{"BFD multiplier 1", bfd + `{detectMultiplier: 1}`, []string{"spec.detectMultiplier", "greater than or equal to 2"}},
		{"alias defined as another alias", comm + `{communities: [{name: x, value: "no-export"}]}`, []string{"spec.communities[0].value", "not an alias"}},
		{"duplicate alias names", comm + `{communities: [{name: x, value: "1:1"}, {name: x, value: "1:2"}]}`, []string{".spec.communities", `duplicate entries for key [name="x"]`}},
	}
	if len(invalid) < 20 {
		t.Fatalf("only %d invalid objects", len(invalid))
	}
	for _, tc := range invalid {
		t.Run("invalid/"+tc.desc, func(t *testing.T) {
			_, err := bed.Apply(ctx, object(t, tc.yaml))
			if err == nil {
				t.Fatal("the API server accepted an invalid object")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

// object parses one YAML object.
func object(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatalf("test YAML: %v", err)
	}
	return &unstructured.Unstructured{Object: m}
}
