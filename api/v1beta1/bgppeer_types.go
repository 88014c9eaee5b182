package v1beta1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// BGPPeerSpec describes one BGP session that the selected nodes open to a
// router.
//
// +kubebuilder:validation:XValidation:rule="!(has(self.password) && has(self.passwordSecret))",message="password and passwordSecret are mutually exclusive: set one",fieldPath=`.passwordSecret`
// +kubebuilder:validation:XValidation:rule="!has(self.holdTime) || duration(self.holdTime) >= duration('3s')",message="holdTime must be at least 3s (0, no keepalives, is not supported by Herald's BGP implementation)",fieldPath=`.holdTime`
// +kubebuilder:validation:XValidation:rule="!has(self.gracefulRestartTime) || (has(self.enableGracefulRestart) && self.enableGracefulRestart)",message="gracefulRestartTime needs enableGracefulRestart: true",fieldPath=`.gracefulRestartTime`
// +kubebuilder:validation:XValidation:rule="!has(self.keepaliveTime) || !has(self.holdTime) || duration(self.keepaliveTime) <= duration(self.holdTime)",message="keepaliveTime must not be greater than holdTime",fieldPath=`.keepaliveTime`
// +kubebuilder:validation:XValidation:rule="has(self.peerASN) != has(self.dynamicASN)",message="set exactly one of peerASN and dynamicASN"
// +kubebuilder:validation:XValidation:rule="has(self.peerAddress) != has(self.interface)",message="set exactly one of peerAddress and interface"
// +kubebuilder:validation:XValidation:rule="!has(self.sourceAddress) || (has(self.peerAddress) && ip(self.sourceAddress).family() == ip(self.peerAddress).family())",message="sourceAddress must be of the same IP family as peerAddress (and cannot be set with interface: the session runs over the interface's link-local address)",fieldPath=`.sourceAddress`
// +kubebuilder:validation:XValidation:rule="!has(self.ebgpMultiHop) || !self.ebgpMultiHop || (has(self.peerASN) ? self.myASN != self.peerASN : self.dynamicASN == 'external')",message="ebgpMultiHop applies to eBGP sessions only (myASN equals peerASN, or dynamicASN is internal)",fieldPath=`.ebgpMultiHop`
// +kubebuilder:validation:XValidation:rule="!has(self.ebgpMultiHop) || !self.ebgpMultiHop || !has(self.interface)",message="ebgpMultiHop cannot be set with interface: an unnumbered session is one hop over the interface's link-local addresses",fieldPath=`.ebgpMultiHop`
// +kubebuilder:validation:XValidation:rule="!has(self.bfdProfile) || (!has(self.interface) && !has(self.vrf))",message="bfdProfile is not supported with interface or vrf yet: Herald's BFD does not bind to an interface or a VRF",fieldPath=`.bfdProfile`
type BGPPeerSpec struct {
	// MyASN is the nodes' autonomous system number.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4294967295
	MyASN int64 `json:"myASN"`

	// PeerASN is the router's autonomous system number. Set exactly one of
	// peerASN and dynamicASN.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4294967295
	// +optional
	PeerASN int64 `json:"peerASN,omitempty"`

	// DynamicASN accepts the router's ASN from its OPEN message instead of
	// a fixed peerASN: "internal" accepts only myASN (iBGP), "external"
	// any other ASN (eBGP; a router that announces myASN is reset with the
	// reason). Set exactly one of peerASN and dynamicASN.
	// +kubebuilder:validation:Enum=internal;external
	// +optional
	DynamicASN string `json:"dynamicASN,omitempty"`

	// PeerAddress is the router's IP address. Set exactly one of
	// peerAddress and interface.
	// +kubebuilder:validation:MaxLength=45
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="peerAddress must be an IPv4 or IPv6 address"
	// +optional
	PeerAddress string `json:"peerAddress,omitempty"`

	// Interface peers over this node interface instead of a peerAddress
	// (BGP unnumbered): the session runs between the IPv6 link-local
	// addresses of the link, the router's found in the node's neighbour
	// table (filled by the router's IPv6 router advertisements), and IPv4
	// routes are sent with the node's IPv6 link-local next hop (RFC 8950).
	// Set exactly one of peerAddress and interface.
	// +kubebuilder:validation:MaxLength=15
	// +kubebuilder:validation:Pattern=`^[^\s/:%]+$`
	// +optional
	Interface string `json:"interface,omitempty"`

	// Passive makes the nodes wait for the router to open the session
	// instead of dialling it. The speakers accept BGP connections only
	// when started with --bgp-listen-port (default: no listener), and only
	// from the addresses of their configured peers.
	// +optional
	Passive bool `json:"passive,omitempty"`

	// VRF runs the session in this VRF of the nodes: its socket is bound
	// to the node's VRF device of that name (SO_BINDTODEVICE). Advertise a
	// pool to it with a BGPAdvertisement whose peers name this BGPPeer.
	// +kubebuilder:validation:MaxLength=15
	// +kubebuilder:validation:Pattern=`^[^\s/:%]+$`
	// +optional
	VRF string `json:"vrf,omitempty"`

	// PeerPort is the router's TCP port. Default 179.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +kubebuilder:default=179
	// +optional
	PeerPort *int32 `json:"peerPort,omitempty"`

	// SourceAddress is the local address the session is opened from.
	// Default: the node's address toward the peer.
	// +kubebuilder:validation:MaxLength=45
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="sourceAddress must be an IPv4 or IPv6 address"
	// +optional
	SourceAddress string `json:"sourceAddress,omitempty"`

	// HoldTime is the BGP hold time: at least 3s. Default 90s. (MetalLB
	// also accepts 0, no keepalives; Herald refuses it.)
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +optional
	HoldTime *metav1.Duration `json:"holdTime,omitempty"`

	// KeepaliveTime is the BGP keepalive interval; at most HoldTime.
	// Default: a third of HoldTime.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +optional
	KeepaliveTime *metav1.Duration `json:"keepaliveTime,omitempty"`

	// ConnectTime is how long to wait between connection attempts.
	// Default 120s.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('65535s')",message="connectTime must be within 1s..65535s"
	// +optional
	ConnectTime *metav1.Duration `json:"connectTime,omitempty"`

	// RouterID is the BGP router ID. Default: the node's IPv4 address.
	// +kubebuilder:validation:MaxLength=15
	// +kubebuilder:validation:XValidation:rule="isIP(self) && ip(self).family() == 4",message="routerID must be an IPv4 address"
	// +optional
	RouterID string `json:"routerID,omitempty"`

	// NodeSelectors limit the nodes that open this session. Empty: all.
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	NodeSelectors []metav1.LabelSelector `json:"nodeSelectors,omitempty"`

	// Password is the TCP-MD5 password, in clear text. Prefer
	// PasswordSecret.
	// +kubebuilder:validation:MaxLength=80
	// +optional
	Password string `json:"password,omitempty"`

	// PasswordSecret names a Secret of type kubernetes.io/basic-auth in
	// Herald's namespace whose "password" key holds the TCP-MD5 password.
	// +optional
	PasswordSecret *SecretRef `json:"passwordSecret,omitempty"`

	// BFDProfile names the BFDProfile to run BFD with on this session.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	BFDProfile string `json:"bfdProfile,omitempty"`

	// EBGPMultiHop allows an eBGP peer that is more than one hop away.
	// +optional
	EBGPMultiHop bool `json:"ebgpMultiHop,omitempty"`

	// EnableGracefulRestart announces the graceful-restart capability, so
	// the router keeps the routes while a speaker restarts.
	// +optional
	EnableGracefulRestart bool `json:"enableGracefulRestart,omitempty"`

	// GracefulRestartTime is the restart time announced with graceful
	// restart: how long the router keeps a stopped speaker's routes as
	// stale before it drops them. A speaker restart (a rollout) must bring
	// the session back within it. Default 120s; at most 4095s. Needs
	// enableGracefulRestart.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('4095s')",message="gracefulRestartTime must be within 1s..4095s"
	// +optional
	GracefulRestartTime *metav1.Duration `json:"gracefulRestartTime,omitempty"`

	// DisableMP turns multiprotocol BGP off for this session: it carries
	// only the prefixes of its own address family (IPv4 over an IPv4
	// session, IPv6 over an IPv6 one). Use one BGPPeer per family for a
	// router that needs a session per family.
	// +optional
	DisableMP bool `json:"disableMP,omitempty"`
}

// SecretRef names a Secret in Herald's own namespace.
type SecretRef struct {
	// Name is the Secret's name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// BGPPeer is a router that the speakers open a BGP session to.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=bgpp;peer,categories=herald
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=`.spec.peerAddress`
// +kubebuilder:printcolumn:name="Interface",type=string,JSONPath=`.spec.interface`,priority=1
// +kubebuilder:printcolumn:name="My ASN",type=integer,JSONPath=`.spec.myASN`
// +kubebuilder:printcolumn:name="Peer ASN",type=integer,JSONPath=`.spec.peerASN`
// +kubebuilder:printcolumn:name="BFD",type=string,JSONPath=`.spec.bfdProfile`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BGPPeer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   BGPPeerSpec `json:"spec"`
	Status Status      `json:"status,omitempty"`
}

// BGPPeerList is a list of BGPPeers.
//
// +kubebuilder:object:root=true
type BGPPeerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPPeer `json:"items"`
}
