package e2etest

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/heraldlb/herald/e2etest/testbed"
)

// arpClaim is one ARP packet (a reply or a gratuitous ARP) whose sender
// claims an address.
type arpClaim struct {
	at  time.Time
	mac string
}

// arpWatch records, from inside a namespace, every ARP packet whose sender
// protocol address is ip: who claims the address, and when.
type arpWatch struct {
	mu     sync.Mutex
	claims []arpClaim
	fd     int
	quit   atomic.Bool
	done   chan struct{}
}

// watchARP starts recording the ARP claims of ip seen in ns.
func watchARP(ns testbed.NS, ip netip.Addr) (*arpWatch, error) {
	w := &arpWatch{fd: -1, done: make(chan struct{})}
	proto := int(htons(unix.ETH_P_ARP))
	err := ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return err
		}
		w.fd = fd
		return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 200_000})
	})
	if err != nil {
		if w.fd >= 0 {
			unix.Close(w.fd)
		}
		return nil, err
	}
	want := ip.As4()
	go func() {
		defer close(w.done)
		buf := make([]byte, 1500)
		for !w.quit.Load() {
			n, _, err := unix.Recvfrom(w.fd, buf, 0)
			if err != nil && err != unix.EAGAIN && err != unix.EINTR {
				return
			}
			if err != nil || n < 42 {
				continue // EAGAIN every 200 ms lets quit be seen
			}
			// Ethernet header, then ARP: sender MAC at 22, sender IP at 28.
			if [4]byte(buf[28:32]) != want {
				continue
			}
			w.mu.Lock()
			w.claims = append(w.claims, arpClaim{at: time.Now(), mac: net.HardwareAddr(buf[22:28]).String()})
			w.mu.Unlock()
		}
	}()
	return w, nil
}

// stop ends the recording and returns the claims seen.
func (w *arpWatch) stop() []arpClaim {
	w.quit.Store(true)
	<-w.done
	unix.Close(w.fd)
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]arpClaim(nil), w.claims...)
}

func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
