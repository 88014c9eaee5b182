package migrate

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// These types mirror MetalLB v0.15's API (go.universe.tf/metallb/api), with
// a pointer wherever the converter must tell an absent field from a zero
// one. Herald does not depend on MetalLB's module.

// MetalLB's API group and the versions the converter reads.
const (
	metallbGroup = "metallb.io"
	metallbV1    = "metallb.io/v1beta1"
	metallbV2    = "metallb.io/v1beta2"
)

// Kinds of metallb.io.
const (
	kindIPAddressPool    = "IPAddressPool"
	kindL2Advertisement  = "L2Advertisement"
	kindBGPAdvertisement = "BGPAdvertisement"
	kindBGPPeer          = "BGPPeer"
	kindBFDProfile       = "BFDProfile"
	kindCommunity        = "Community"
	kindConfigMap        = "ConfigMap"
)

// isStatusKind reports whether a metallb.io kind only reports state, so
// that there is nothing to convert.
func isStatusKind(kind string) bool {
	switch kind {
	case "ServiceL2Status", "ServiceBGPStatus", "BGPSessionState", "ConfigurationState":
		return true
	}
	return false
}

type mlbPool struct {
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Addresses         []string `json:"addresses"`
		AutoAssign        *bool    `json:"autoAssign"`
		AvoidBuggyIPs     *bool    `json:"avoidBuggyIPs"`
		ServiceAllocation *struct {
			Priority           *int                   `json:"priority"`
			Namespaces         []string               `json:"namespaces"`
			NamespaceSelectors []metav1.LabelSelector `json:"namespaceSelectors"`
			ServiceSelectors   []metav1.LabelSelector `json:"serviceSelectors"`
		} `json:"serviceAllocation"`
	} `json:"spec"`
}

type mlbL2Adv struct {
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		IPAddressPools         []string               `json:"ipAddressPools"`
		IPAddressPoolSelectors []metav1.LabelSelector `json:"ipAddressPoolSelectors"`
		NodeSelectors          []metav1.LabelSelector `json:"nodeSelectors"`
		Interfaces             []string               `json:"interfaces"`
	} `json:"spec"`
}

type mlbBGPAdv struct {
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		AggregationLength      *int32                 `json:"aggregationLength"`
		AggregationLengthV6    *int32                 `json:"aggregationLengthV6"`
		LocalPref              *int64                 `json:"localPref"`
		Communities            []string               `json:"communities"`
		IPAddressPools         []string               `json:"ipAddressPools"`
		IPAddressPoolSelectors []metav1.LabelSelector `json:"ipAddressPoolSelectors"`
		NodeSelectors          []metav1.LabelSelector `json:"nodeSelectors"`
		Peers                  []string               `json:"peers"`
	} `json:"spec"`
}

// mlbPeer holds a BGPPeer of either version: v1beta1's nodeSelectors have
// the same JSON shape as a LabelSelector, and its timers are durations that
// are "0s" when unset.
type mlbPeer struct {
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		MyASN          int64                  `json:"myASN"`
		PeerASN        int64                  `json:"peerASN"`
		DynamicASN     string                 `json:"dynamicASN"`
		PeerAddress    string                 `json:"peerAddress"`
		Interface      string                 `json:"interface"`
		SourceAddress  string                 `json:"sourceAddress"`
		PeerPort       *int32                 `json:"peerPort"`
		HoldTime       *metav1.Duration       `json:"holdTime"`
		KeepaliveTime  *metav1.Duration       `json:"keepaliveTime"`
		ConnectTime    *metav1.Duration       `json:"connectTime"`
		RouterID       string                 `json:"routerID"`
		NodeSelectors  []metav1.LabelSelector `json:"nodeSelectors"`
		Password       string                 `json:"password"`
		PasswordSecret *struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"passwordSecret"`
		BFDProfile             string `json:"bfdProfile"`
		EBGPMultiHop           *bool  `json:"ebgpMultiHop"`
		EnableGracefulRestart  *bool  `json:"enableGracefulRestart"`
		VRF                    string `json:"vrf"`
		DisableMP              *bool  `json:"disableMP"`
		DualStackAddressFamily *bool  `json:"dualStackAddressFamily"`
	} `json:"spec"`
}

type mlbBFD struct {
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		ReceiveInterval  *int32 `json:"receiveInterval"`
		TransmitInterval *int32 `json:"transmitInterval"`
		DetectMultiplier *int32 `json:"detectMultiplier"`
		EchoInterval     *int32 `json:"echoInterval"`
		EchoMode         *bool  `json:"echoMode"`
		PassiveMode      *bool  `json:"passiveMode"`
		MinimumTTL       *int32 `json:"minimumTtl"`
	} `json:"spec"`
}

type mlbCommunity struct {
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Communities []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"communities"`
	} `json:"spec"`
}

// knownSpec lists the spec fields of kind in MetalLB v0.15, v1beta1 and
// v1beta2 together; any other field is reported as unknown, so that a newer
// MetalLB's setting is never dropped in silence.
func knownSpec(kind string) []string {
	switch kind {
	case kindIPAddressPool:
		return []string{"addresses", "autoAssign", "avoidBuggyIPs", "serviceAllocation"}
	case kindL2Advertisement:
		return []string{"ipAddressPools", "ipAddressPoolSelectors", "nodeSelectors", "interfaces"}
	case kindBGPAdvertisement:
		return []string{"aggregationLength", "aggregationLengthV6", "localPref", "communities", "ipAddressPools", "ipAddressPoolSelectors", "nodeSelectors", "peers"}
	case kindBGPPeer:
		return []string{"myASN", "peerASN", "dynamicASN", "peerAddress", "interface", "sourceAddress", "peerPort", "holdTime", "keepaliveTime",
			"connectTime", "routerID", "nodeSelectors", "password", "passwordSecret", "bfdProfile", "ebgpMultiHop", "enableGracefulRestart",
			"vrf", "disableMP", "dualStackAddressFamily"}
	case kindBFDProfile:
		return []string{"receiveInterval", "transmitInterval", "detectMultiplier", "echoInterval", "echoMode", "passiveMode", "minimumTtl"}
	case kindCommunity:
		return []string{"communities"}
	}
	return nil
}

// legacyConfig is the pre-0.13 configuration, the "config" key of
// MetalLB's ConfigMap.
type legacyConfig struct {
	Peers          []legacyPeer      `json:"peers"`
	BGPCommunities map[string]string `json:"bgp-communities"`
	Pools          []legacyPool      `json:"address-pools"`
	BFDProfiles    []legacyBFD       `json:"bfd-profiles"`
}

type legacyPeer struct {
	MyASN         int64                `json:"my-asn"`
	PeerASN       int64                `json:"peer-asn"`
	PeerAddress   string               `json:"peer-address"`
	SourceAddress string               `json:"source-address"`
	PeerPort      int32                `json:"peer-port"`
	HoldTime      string               `json:"hold-time"`
	KeepaliveTime string               `json:"keepalive-time"`
	RouterID      string               `json:"router-id"`
	NodeSelectors []legacyNodeSelector `json:"node-selectors"`
	Password      string               `json:"password"`
	BFDProfile    string               `json:"bfd-profile"`
	EBGPMultiHop  bool                 `json:"ebgp-multihop"`
}

type legacyNodeSelector struct {
	MatchLabels      map[string]string `json:"match-labels"`
	MatchExpressions []struct {
		Key      string   `json:"key"`
		Operator string   `json:"operator"`
		Values   []string `json:"values"`
	} `json:"match-expressions"`
}

type legacyPool struct {
	Name              string         `json:"name"`
	Protocol          string         `json:"protocol"`
	Addresses         []string       `json:"addresses"`
	AutoAssign        *bool          `json:"auto-assign"`
	AvoidBuggyIPs     *bool          `json:"avoid-buggy-ips"`
	BGPAdvertisements []legacyBGPAdv `json:"bgp-advertisements"`
}

type legacyBGPAdv struct {
	AggregationLength   *int32   `json:"aggregation-length"`
	AggregationLengthV6 *int32   `json:"aggregation-length-v6"`
	LocalPref           *int64   `json:"localpref"`
	Communities         []string `json:"communities"`
}

type legacyBFD struct {
	Name             string `json:"name"`
	ReceiveInterval  *int32 `json:"receive-interval"`
	TransmitInterval *int32 `json:"transmit-interval"`
	DetectMultiplier *int32 `json:"detect-multiplier"`
	EchoInterval     *int32 `json:"echo-interval"`
	EchoMode         *bool  `json:"echo-mode"`
	PassiveMode      *bool  `json:"passive-mode"`
	MinimumTTL       *int32 `json:"minimum-ttl"`
}
