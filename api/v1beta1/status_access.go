package v1beta1

import (
	"encoding/json"

	"k8s.io/apimachinery/pkg/runtime"
)

// +kubebuilder:object:generate=false

// Configurable is a Herald configuration object: it carries a Status, and
// its spec can be swapped for the accepted one.
type Configurable interface {
	runtime.Object
	GetName() string
	GetGeneration() int64
	ConfigStatus() *Status
	// SpecJSON returns the spec, encoded.
	SpecJSON() ([]byte, error)
	// SetSpecJSON replaces the spec with an encoded one.
	SetSpecJSON([]byte) error
}

// ConfigStatus returns the pool's conditions and observed generation.
func (x *IPAddressPool) ConfigStatus() *Status { return &x.Status.Status }

// ConfigStatus returns the advertisement's status.
func (x *L2Advertisement) ConfigStatus() *Status { return &x.Status }

// ConfigStatus returns the advertisement's status.
func (x *BGPAdvertisement) ConfigStatus() *Status { return &x.Status }

// ConfigStatus returns the peer's status.
func (x *BGPPeer) ConfigStatus() *Status { return &x.Status }

// ConfigStatus returns the profile's status.
func (x *BFDProfile) ConfigStatus() *Status { return &x.Status }

// ConfigStatus returns the object's status.
func (x *Community) ConfigStatus() *Status { return &x.Status }

// SpecJSON returns the spec, encoded.
func (x *IPAddressPool) SpecJSON() ([]byte, error) { return json.Marshal(x.Spec) }

// SetSpecJSON replaces the spec with an encoded one.
func (x *IPAddressPool) SetSpecJSON(b []byte) error {
	var s IPAddressPoolSpec
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	x.Spec = s
	return nil
}

// SpecJSON returns the spec, encoded.
func (x *L2Advertisement) SpecJSON() ([]byte, error) { return json.Marshal(x.Spec) }

// SetSpecJSON replaces the spec with an encoded one.
func (x *L2Advertisement) SetSpecJSON(b []byte) error {
	var s L2AdvertisementSpec
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	x.Spec = s
	return nil
}

// SpecJSON returns the spec, encoded.
func (x *BGPAdvertisement) SpecJSON() ([]byte, error) { return json.Marshal(x.Spec) }

// SetSpecJSON replaces the spec with an encoded one.
func (x *BGPAdvertisement) SetSpecJSON(b []byte) error {
	var s BGPAdvertisementSpec
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	x.Spec = s
	return nil
}

// SpecJSON returns the spec, encoded.
func (x *BGPPeer) SpecJSON() ([]byte, error) { return json.Marshal(x.Spec) }

// SetSpecJSON replaces the spec with an encoded one.
func (x *BGPPeer) SetSpecJSON(b []byte) error {
	var s BGPPeerSpec
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	x.Spec = s
	return nil
}

// SpecJSON returns the spec, encoded.
func (x *BFDProfile) SpecJSON() ([]byte, error) { return json.Marshal(x.Spec) }

// SetSpecJSON replaces the spec with an encoded one.
func (x *BFDProfile) SetSpecJSON(b []byte) error {
	var s BFDProfileSpec
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	x.Spec = s
	return nil
}

// SpecJSON returns the spec, encoded.
func (x *Community) SpecJSON() ([]byte, error) { return json.Marshal(x.Spec) }

// SetSpecJSON replaces the spec with an encoded one.
func (x *Community) SetSpecJSON(b []byte) error {
	var s CommunitySpec
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	x.Spec = s
	return nil
}
