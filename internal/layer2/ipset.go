package layer2

import (
	"net/netip"
	"sync"
)

// ipSet is the set of IPs a responder answers for. Lookups take a read
// lock and one map access, so their cost does not depend on the number of
// IPs; updates are O(1) too, so taking 10,000 IPs over one by one is linear.
type ipSet struct {
	mu  sync.RWMutex
	ips map[netip.Addr]struct{}
}

func newIPSet() *ipSet { return &ipSet{ips: make(map[netip.Addr]struct{})} }

func (s *ipSet) has(ip netip.Addr) bool {
	s.mu.RLock()
	_, ok := s.ips[ip]
	s.mu.RUnlock()
	return ok
}

// add reports whether ip was not in the set.
func (s *ipSet) add(ip netip.Addr) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.ips[ip]; ok {
		return false
	}
	s.ips[ip] = struct{}{}
	return true
}

// remove reports whether ip was in the set.
func (s *ipSet) remove(ip netip.Addr) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.ips[ip]; !ok {
		return false
	}
	delete(s.ips, ip)
	return true
}

func (s *ipSet) list() []netip.Addr {
	s.mu.RLock()
	defer s.mu.RUnlock()
	l := make([]netip.Addr, 0, len(s.ips))
	for ip := range s.ips {
		l = append(l, ip)
	}
	return l
}
