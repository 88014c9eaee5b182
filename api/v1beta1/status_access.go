package v1beta1

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
