package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

// raSender sends IPv6 router advertisements on the interfaces of
// unnumbered peers. A router running BGP unnumbered (FRR's `neighbor eth1
// interface`) learns the node's link-local address from them, as the node
// learns the router's from the router's: without them the router never
// opens or accepts the session. The advertisements have a router lifetime
// of zero, so no host takes the node as a default router, and carry only
// the source link-layer address. Sending them takes a raw ICMPv6 socket
// (CAP_NET_RAW, which the speaker has for ARP and NDP).
type raSender struct {
	log *slog.Logger
	mu  sync.Mutex
	// ifaces holds one sender per interface, with the number of peers
	// that use it.
	ifaces map[string]*raIface
	wg     sync.WaitGroup
}

type raIface struct {
	users  int
	cancel context.CancelFunc
}

// raInterval is the interval between advertisements after the first
// few, which go out a second apart so that a router learns the node at
// once. FRR's own interval on an unnumbered interface is 10s.
var raInterval = 10 * time.Second

func newRASender(log *slog.Logger) *raSender {
	return &raSender{log: log, ifaces: map[string]*raIface{}}
}

// add starts advertising on ifname, if no peer does yet.
func (r *raSender) add(ifname string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if i := r.ifaces[ifname]; i != nil {
		i.users++
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.ifaces[ifname] = &raIface{users: 1, cancel: cancel}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.run(ctx, ifname)
	}()
}

// remove stops advertising on ifname when its last peer is gone.
func (r *raSender) remove(ifname string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := r.ifaces[ifname]
	if i == nil {
		return
	}
	if i.users--; i.users == 0 {
		i.cancel()
		delete(r.ifaces, ifname)
	}
}

// stopAll stops every sender and waits for them.
func (r *raSender) stopAll() {
	r.mu.Lock()
	for name, i := range r.ifaces {
		i.cancel()
		delete(r.ifaces, name)
	}
	r.mu.Unlock()
	r.wg.Wait()
}

func (r *raSender) run(ctx context.Context, ifname string) {
	sent, failing := 0, false
	for {
		err := sendRA(ifname)
		switch {
		case err != nil && !failing:
			r.log.Warn("IPv6 router advertisement not sent; an unnumbered router cannot learn this node's address", slog.String("interface", ifname), slog.Any("error", err))
			failing = true
		case err == nil:
			if failing {
				r.log.Info("IPv6 router advertisements sent again", slog.String("interface", ifname))
			}
			failing = false
			sent++
		}
		wait := raInterval
		if sent < 3 {
			wait = time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// sendRA sends one router advertisement to all nodes on ifname, from the
// interface's link-local address.
func sendRA(ifname string) error {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return err
	}
	c, err := icmp.ListenPacket("ip6:ipv6-icmp", "::")
	if err != nil {
		return err
	}
	// One send per socket: the send's error is the one that matters, a
	// close error on the raw socket afterwards leaves nothing to do.
	defer func() { _ = c.Close() }()
	p := c.IPv6PacketConn()
	// RFC 4861: a receiver drops neighbour discovery with another hop
	// limit.
	if err := p.SetMulticastHopLimit(255); err != nil {
		return err
	}
	if err := p.SetMulticastInterface(ifi); err != nil {
		return err
	}
	// Cur hop limit 0, no flags, router lifetime 0 (not a default
	// router), reachable time and retrans timer unspecified.
	body := make([]byte, 12, 12+8)
	if len(ifi.HardwareAddr) == 6 {
		body = append(body, 1, 1) // source link-layer address, 8 bytes
		body = append(body, ifi.HardwareAddr...)
	}
	msg, err := (&icmp.Message{Type: ipv6.ICMPTypeRouterAdvertisement, Body: &icmp.RawBody{Data: body}}).Marshal(nil)
	if err != nil {
		return err
	}
	cm := &ipv6.ControlMessage{HopLimit: 255, IfIndex: ifi.Index}
	if _, err := p.WriteTo(msg, cm, &net.IPAddr{IP: net.IPv6linklocalallnodes, Zone: ifname}); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return nil
}
