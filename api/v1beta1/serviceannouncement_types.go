package v1beta1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Label keys that ServiceAnnouncement objects carry, so that a speaker
// finds its own and a person selects by Service or node. The node label is
// [LabelSessionNode].
const (
	// LabelAnnouncementService is the name of the announced Service.
	LabelAnnouncementService = "herald.io/service"
	// LabelAnnouncementProtocol is L2 or BGP.
	LabelAnnouncementProtocol = "herald.io/protocol"
)

// Protocols of a ServiceAnnouncement.
const (
	ProtocolL2  = "L2"
	ProtocolBGP = "BGP"
)

// ServiceAnnouncementStatus says which node announces a Service's IPs, how,
// and to whom.
type ServiceAnnouncementStatus struct {
	// Service is the announced Service's name, in the object's namespace.
	// +optional
	Service string `json:"service,omitempty"`

	// Protocol is L2 (the node answers ARP and NDP for the IPs) or BGP
	// (the node advertises them to its BGP peers).
	// +optional
	Protocol string `json:"protocol,omitempty"`

	// Node is the announcing node.
	// +optional
	Node string `json:"node,omitempty"`

	// IPs are the announced addresses of the Service.
	// +optional
	// +listType=set
	IPs []string `json:"ips,omitempty"`

	// Interfaces are the interfaces the node answers on in L2 mode; empty
	// is every usable interface.
	// +optional
	// +listType=set
	Interfaces []string `json:"interfaces,omitempty"`

	// Peers are the BGPPeers the node advertises the IPs to in BGP mode
	// (whether their sessions are up is in the BGPSessionStates).
	// +optional
	// +listType=set
	Peers []string `json:"peers,omitempty"`
}

// ServiceAnnouncement reports who announces a Service's IPs. The speakers
// write it in the Service's namespace: in L2 mode one object per Service,
// named <service>.l2, written by the node that answers for the IPs (the
// next owner overwrites it on a failover); in BGP mode one object per
// Service and advertising node, named <service>.bgp.<node>. An object is
// deleted when its announcement ends. It has no spec; it is read-only for
// people.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Namespaced,shortName=svcann,categories=herald
// +kubebuilder:printcolumn:name="Service",type=string,JSONPath=`.status.service`
// +kubebuilder:printcolumn:name="IP",type=string,JSONPath=`.status.ips`
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.status.node`
// +kubebuilder:printcolumn:name="Protocol",type=string,JSONPath=`.status.protocol`
// +kubebuilder:printcolumn:name="Peers",type=string,JSONPath=`.status.peers`
// +kubebuilder:printcolumn:name="Interfaces",type=string,JSONPath=`.status.interfaces`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ServiceAnnouncement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Status ServiceAnnouncementStatus `json:"status,omitempty"`
}

// ServiceAnnouncementList is a list of ServiceAnnouncements.
//
// +kubebuilder:object:root=true
type ServiceAnnouncementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ServiceAnnouncement `json:"items"`
}
