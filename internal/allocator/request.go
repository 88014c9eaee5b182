package allocator

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/heraldlb/herald/internal/config"
)

// FamilyPolicy is a Service's spec.ipFamilyPolicy.
type FamilyPolicy int

const (
	// SingleStack gives the Service one address, of its first family.
	SingleStack FamilyPolicy = iota
	// PreferDualStack gives the Service one address of each family in its
	// Families when it can, and at least one. A Service that holds one
	// family gains the other as soon as an address is free, without moving
	// the one it holds.
	PreferDualStack
	// RequireDualStack gives the Service one IPv4 and one IPv6 address, or
	// fails.
	RequireDualStack
)

// String returns the Kubernetes spelling of p.
func (p FamilyPolicy) String() string {
	switch p {
	case SingleStack:
		return "SingleStack"
	case PreferDualStack:
		return "PreferDualStack"
	case RequireDualStack:
		return "RequireDualStack"
	}
	return "FamilyPolicy(" + strconv.Itoa(int(p)) + ")"
}

// Port is one port of a Service, for the sharing rules: two Services share
// an address only if no Port is in both.
type Port struct {
	// Protocol is "TCP", "UDP" or "SCTP" (any case); empty means TCP, as in
	// the Kubernetes API.
	Protocol string
	// Port is the service port number.
	Port int32
}

// String returns "TCP/80".
func (p Port) String() string {
	proto := strings.ToUpper(p.Protocol)
	if proto == "" {
		proto = "TCP"
	}
	return proto + "/" + strconv.Itoa(int(p.Port))
}

// Request is what a Service asks of the allocator. The controller builds it
// from the Service, its Namespace and the herald.io/ annotations.
type Request struct {
	// Key identifies the Service: "namespace/name".
	Key string
	// Namespace is the Service's namespace, and NamespaceLabels its labels,
	// for pools' namespace selectors.
	Namespace       string
	NamespaceLabels map[string]string
	// ServiceLabels are the Service's labels, for pools' service selectors.
	ServiceLabels map[string]string
	// Families is spec.ipFamilies, in order: the first is the primary family.
	// When empty it is taken from RequestedIPs, or else is IPv4 (both
	// families under RequireDualStack).
	Families []config.Family
	// FamilyPolicy is spec.ipFamilyPolicy.
	FamilyPolicy FamilyPolicy
	// RequestedIPs are the addresses the Service asks for (the
	// herald.io/loadBalancerIPs annotation or spec.loadBalancerIP), at most
	// one per family. When set, the Service gets exactly these or an error.
	RequestedIPs []netip.Addr
	// Pool is the pool the Service asks for (herald.io/address-pool), or "".
	Pool string
	// SharingKey is the herald.io/allow-shared-ip key, or "" when the Service
	// shares its addresses with nobody. A key joins only Services of the
	// same namespace, unless ShareAcrossNamespaces is set on every Service
	// that shares: a tenant cannot join another namespace's address by
	// guessing its key.
	SharingKey string
	// ShareAcrossNamespaces (herald.io/allow-shared-ip-across-namespaces:
	// "true") lets SharingKey join Services of other namespaces that set it
	// too.
	ShareAcrossNamespaces bool
	// BackendKey identifies the endpoints the Service selects. It is set
	// under externalTrafficPolicy: Local, and empty otherwise; Services share
	// an address only when their BackendKeys are equal.
	BackendKey string
	// Ports are the Service's ports.
	Ports []Port
}

// request is a validated Request with its derived values.
type request struct {
	*Request
	// want are the families the Service should get, primary first.
	want []config.Family
	// ips are RequestedIPs, unmapped, in the order of want.
	ips []netip.Addr
	// ports are sorted and deduplicated, with canonical protocols.
	ports []Port
	// sharing is SharingKey scoped to the namespace (see scopedSharingKey).
	sharing string
}

// newRequest validates r for Allocate.
func newRequest(r *Request) (*request, error) {
	q, err := newShareRequest(r)
	if err != nil {
		return nil, err
	}
	if r.FamilyPolicy < SingleStack || r.FamilyPolicy > RequireDualStack {
		return nil, errorf(ErrInvalidRequest, "%s: unknown ipFamilyPolicy %d", r.Key, int(r.FamilyPolicy))
	}
	fams := r.Families
	if len(fams) > 2 {
		return nil, errorf(ErrInvalidRequest, "%s: ipFamilies has %d entries; at most 2 are allowed", r.Key, len(fams))
	}
	for i, f := range fams {
		if f != config.IPv4 && f != config.IPv6 {
			return nil, errorf(ErrInvalidRequest, "%s: ipFamilies[%d] is %d; want IPv4 or IPv6", r.Key, i, int(f))
		}
		if i == 1 && fams[0] == f {
			return nil, errorf(ErrInvalidRequest, "%s: ipFamilies lists %s twice", r.Key, f)
		}
	}
	ips := make([]netip.Addr, 0, len(r.RequestedIPs))
	for _, ip := range r.RequestedIPs {
		if !ip.IsValid() {
			return nil, errorf(ErrInvalidRequest, "%s: a requested IP is empty or invalid", r.Key)
		}
		ip = ip.Unmap().WithZone("")
		for _, o := range ips {
			if config.FamilyOf(o) == config.FamilyOf(ip) {
				return nil, errorf(ErrInvalidRequest, "%s requests two %s addresses (%s and %s); a Service gets at most one per family",
					r.Key, config.FamilyOf(ip), o, ip)
			}
		}
		ips = append(ips, ip)
	}
	if len(fams) == 0 {
		for _, ip := range ips {
			fams = append(fams, config.FamilyOf(ip))
		}
		if len(fams) == 0 {
			fams = []config.Family{config.IPv4}
		}
	}
	switch r.FamilyPolicy {
	case SingleStack:
		q.want = fams[:1:1]
	case PreferDualStack:
		q.want = slices.Clone(fams)
	case RequireDualStack:
		q.want = []config.Family{fams[0], other(fams[0])}
	}
	for _, ip := range ips {
		if !slices.Contains(q.want, config.FamilyOf(ip)) {
			return nil, errorf(ErrInvalidRequest, "%s requests %s address %s, but with ipFamilies %s and %s it gets only %s",
				r.Key, config.FamilyOf(ip), ip, familyList(fams), r.FamilyPolicy, familyList(q.want))
		}
	}
	if r.FamilyPolicy == RequireDualStack && len(ips) == 1 {
		return nil, errorf(ErrInvalidRequest, "%s is RequireDualStack but requests only %s address %s; request one address of each family, or none",
			r.Key, config.FamilyOf(ips[0]), ips[0])
	}
	slices.SortStableFunc(ips, func(a, b netip.Addr) int {
		return cmp.Compare(slices.Index(q.want, config.FamilyOf(a)), slices.Index(q.want, config.FamilyOf(b)))
	})
	q.ips = ips
	return q, nil
}

// newShareRequest validates the parts of r that Assign needs: the key and
// the sharing fields.
func newShareRequest(r *Request) (*request, error) {
	if r.Key == "" {
		return nil, errorf(ErrInvalidRequest, "request has no Service key")
	}
	ports := make([]Port, 0, len(r.Ports))
	for _, p := range r.Ports {
		proto := strings.ToUpper(p.Protocol)
		if proto == "" {
			proto = "TCP"
		}
		ports = append(ports, Port{Protocol: proto, Port: p.Port})
	}
	slices.SortFunc(ports, comparePorts)
	return &request{Request: r, ports: slices.Compact(ports), sharing: scopedSharingKey(r)}, nil
}

// scopedSharingKey is the key Services share under: the namespace and the
// key, or only the key (with a prefix no namespace can have) for Services
// that share across namespaces.
func scopedSharingKey(r *Request) string {
	if r.SharingKey == "" {
		return ""
	}
	if r.ShareAcrossNamespaces {
		return "*/" + r.SharingKey
	}
	ns := r.Namespace
	if ns == "" {
		ns, _, _ = strings.Cut(r.Key, "/")
	}
	return ns + "/" + r.SharingKey
}

func comparePorts(a, b Port) int {
	return cmp.Or(cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Port, b.Port))
}

// commonPort returns a port in both sorted lists.
func commonPort(a, b []Port) (Port, bool) {
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch c := comparePorts(a[i], b[j]); {
		case c == 0:
			return a[i], true
		case c < 0:
			i++
		default:
			j++
		}
	}
	return Port{}, false
}

// other returns the family that is not f.
func other(f config.Family) config.Family {
	if f == config.IPv6 {
		return config.IPv4
	}
	return config.IPv6
}

func familyList(fs []config.Family) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = f.String()
	}
	return strings.Join(s, " and ")
}
