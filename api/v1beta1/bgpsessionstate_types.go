package v1beta1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Label keys that BGPSessionState objects carry, so that a speaker lists
// only its own and a person selects by node or peer.
const (
	// LabelSessionNode is the node whose speaker writes the object.
	LabelSessionNode = "herald.io/node"
	// LabelSessionPeer is the BGPPeer the session belongs to.
	LabelSessionPeer = "herald.io/peer"
)

// BGPSessionStateStatus is the state of one BGP session of one node's
// speaker, as that speaker last saw it.
type BGPSessionStateStatus struct {
	// Node is the node whose speaker runs the session.
	// +optional
	Node string `json:"node,omitempty"`

	// Peer is the BGPPeer's name.
	// +optional
	Peer string `json:"peer,omitempty"`

	// PeerAddress is the router's address.
	// +optional
	PeerAddress string `json:"peerAddress,omitempty"`

	// LocalAddress is the session's local address, once connected.
	// +optional
	LocalAddress string `json:"localAddress,omitempty"`

	// State is the BGP FSM state: Idle, Connect, Active, OpenSent,
	// OpenConfirm or Established.
	// +optional
	State string `json:"state,omitempty"`

	// BFDState is the BFD session's state (Up, Down, Init, AdminDown), or
	// empty when the peer has no BFD profile.
	// +optional
	BFDState string `json:"bfdState,omitempty"`

	// PrefixesSent counts the prefixes advertised on the session, all
	// families together.
	// +optional
	PrefixesSent int64 `json:"prefixesSent,omitempty"`

	// UpdatesSent counts the UPDATE messages sent since the session was
	// configured.
	// +optional
	UpdatesSent int64 `json:"updatesSent,omitempty"`

	// LastError says why the session last went down or could not be
	// configured, when known.
	// +optional
	LastError string `json:"lastError,omitempty"`

	// EstablishedTime is when the session last became Established.
	// +optional
	EstablishedTime *metav1.Time `json:"establishedTime,omitempty"`

	// LastTransitionTime is when State last changed.
	// +optional
	LastTransitionTime *metav1.Time `json:"lastTransitionTime,omitempty"`
}

// BGPSessionState reports one BGP session of one node: the speakers write
// one per node and selected BGPPeer, in Herald's namespace, named
// <node>-<peer>. It has no spec; it is read-only for people.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Namespaced,shortName=bgpss,categories=herald
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.status.node`
// +kubebuilder:printcolumn:name="Peer",type=string,JSONPath=`.status.peer`
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=`.status.peerAddress`
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.state`
// +kubebuilder:printcolumn:name="BFD",type=string,JSONPath=`.status.bfdState`
// +kubebuilder:printcolumn:name="Prefixes",type=integer,JSONPath=`.status.prefixesSent`
// +kubebuilder:printcolumn:name="Error",type=string,JSONPath=`.status.lastError`,priority=1
// +kubebuilder:printcolumn:name="Since",type=date,JSONPath=`.status.lastTransitionTime`
type BGPSessionState struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Status BGPSessionStateStatus `json:"status,omitempty"`
}

// BGPSessionStateList is a list of BGPSessionStates.
//
// +kubebuilder:object:root=true
type BGPSessionStateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPSessionState `json:"items"`
}
