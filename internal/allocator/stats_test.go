package allocator

import (
	"errors"
	"math/big"
	"slices"
	"testing"
)

func TestStats(t *testing.T) {
	tests := []struct {
		desc     string
		pool     []string
		opts     []poolOpt
		alloc    []Request
		wantV4   [3]string // total, assigned, available
		wantV6   [3]string
		wantBoth bool
	}{
		{
			desc:   "an empty /8",
			pool:   []string{"10.0.0.0/8"},
			wantV4: [3]string{"16777216", "0", "16777216"},
			wantV6: [3]string{"0", "0", "0"},
		},
		{
			desc:   "avoidBuggyIPs leaves .0 and .255 out of available, not of total",
			pool:   []string{"10.0.0.0/23"},
			opts:   []poolOpt{avoid},
			alloc:  []Request{rq("ns/a")},
			wantV4: [3]string{"512", "1", "507"},
			wantV6: [3]string{"0", "0", "0"},
		},
		{
			desc:   "avoidBuggyIPs with ranges cut at odd places",
			pool:   []string{"10.0.0.255-10.0.1.0", "10.0.2.254-10.0.3.1"},
			opts:   []poolOpt{avoid},
			wantV4: [3]string{"6", "0", "2"},
			wantV6: [3]string{"0", "0", "0"},
		},
		{
			desc:   "a shared address counts once",
			pool:   []string{"10.0.0.0/24"},
			alloc:  []Request{rq("ns/a", share("k"), ports(tcp(1)...)), rq("ns/b", share("k"), ports(tcp(2)...))},
			wantV4: [3]string{"256", "1", "255"},
			wantV6: [3]string{"0", "0", "0"},
		},
		{
			desc:   "a /64 is exact",
			pool:   []string{"2001:db8::/64"},
			alloc:  []Request{rq("ns/a", fam(v6, SingleStack))},
			wantV4: [3]string{"0", "0", "0"},
			wantV6: [3]string{"18446744073709551616", "1", "18446744073709551615"},
		},
		{
			desc:   "a /1 is exact beyond 64 bits",
			pool:   []string{"8000::/1", "::/2"},
			alloc:  []Request{rq("ns/a", fam(v6, SingleStack))},
			wantV4: [3]string{"0", "0", "0"},
			wantV6: [3]string{new(big.Int).Add(new(big.Int).Lsh(big.NewInt(1), 127), new(big.Int).Lsh(big.NewInt(1), 126)).String(), "1", new(big.Int).Sub(new(big.Int).Add(new(big.Int).Lsh(big.NewInt(1), 127), new(big.Int).Lsh(big.NewInt(1), 126)), big.NewInt(1)).String()},
		},
		{
			desc:   "all of IPv6 saturates at 2^128-1",
			pool:   []string{"::/0"},
			wantV4: [3]string{"0", "0", "0"},
			wantV6: [3]string{"340282366920938463463374607431768211455", "0", "340282366920938463463374607431768211455"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			a := newAllocator(t, mkPool("p", tc.pool, tc.opts...))
			for _, r := range tc.alloc {
				if _, err := a.Allocate(r); err != nil {
					t.Fatal(err)
				}
			}
			s, ok := a.Stats("p")
			if !ok {
				t.Fatal("no stats")
			}
			for i, fs := range []FamilyStats{s.IPv4, s.IPv6} {
				got := [3]string{fs.Total.String(), fs.Assigned.String(), fs.Available.String()}
				want := [2][3]string{tc.wantV4, tc.wantV6}[i]
				if got != want {
					t.Errorf("family %d: got %v, want %v", i, got, want)
				}
				if fs.Total.Big().String() != want[0] {
					t.Errorf("Big() = %s", fs.Total.Big())
				}
			}
		})
	}
}

func TestStranded(t *testing.T) {
	a := newAllocator(t, mkPool("p", []string{"10.0.0.0/24", "2001:db8::/64"}))
	if _, err := a.Allocate(rq("ns/a", fam(v46, RequireDualStack))); err != nil {
		t.Fatal(err)
	}
	rep := a.SetConfig(pools(mkPool("p", []string{"10.0.0.128/25", "2001:db8::/64"})))
	if !slices.Equal(rep.OutOfPool, []string{"ns/a"}) || !slices.Equal(rep.Changed, []string{"ns/a"}) {
		t.Errorf("report = %+v", rep)
	}
	s, _ := a.Stats("p")
	if s.IPv4.Stranded != 1 || s.IPv6.Stranded != 0 || s.IPv4.Assigned.String() != "0" || s.IPv6.Assigned.String() != "1" {
		t.Errorf("stats = %+v", s)
	}
	got, _ := a.Get("ns/a")
	if !slices.Equal(got.Pools, []string{"", "p"}) || !got.OutOfPool() {
		t.Errorf("Get = %+v", got)
	}
	// An unrelated change reports nothing changed, but still lists the
	// Services out of pool.
	rep = a.SetConfig(pools(mkPool("p", []string{"10.0.0.128/25", "2001:db8::/64"}), mkPool("q", []string{"10.9.0.0/24"})))
	if !slices.Equal(rep.OutOfPool, []string{"ns/a"}) || len(rep.Changed) != 0 {
		t.Errorf("report = %+v", rep)
	}
	// A new pool that contains the address takes it in.
	rep = a.SetConfig(pools(mkPool("p", []string{"10.0.0.128/25", "2001:db8::/64"}), mkPool("q", []string{"10.0.0.0/25"})))
	if len(rep.OutOfPool) != 0 || !slices.Equal(rep.Changed, []string{"ns/a"}) {
		t.Errorf("report = %+v", rep)
	}
	got, _ = a.Get("ns/a")
	if !slices.Equal(got.Pools, []string{"q", "p"}) {
		t.Errorf("Get = %+v", got)
	}
	checkInvariants(t, a)
}

func TestLookups(t *testing.T) {
	a := newAllocator(t, mkPool("a", []string{"10.0.0.0/24"}), mkPool("b", []string{"10.0.2.0/24", "2001:db8::/64"}))
	for _, tc := range []struct {
		ip, want string
	}{
		{"10.0.0.0", "a"}, {"10.0.0.255", "a"}, {"10.0.1.0", ""}, {"10.0.2.7", "b"},
		{"::ffff:10.0.2.7", "b"}, {"2001:db8::ffff", "b"}, {"2001:db9::", ""}, {"9.255.255.255", ""},
	} {
		got, ok := a.PoolOf(addrs(tc.ip)[0])
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("PoolOf(%s) = %q, %v; want %q", tc.ip, got, ok, tc.want)
		}
	}
	if _, ok := a.Get("ns/a"); ok {
		t.Error("Get of an unknown Service succeeded")
	}
	if a.Release("ns/a") {
		t.Error("Release of an unknown Service reported true")
	}
	if h := a.Holders(addrs("10.0.0.0")[0]); h != nil {
		t.Errorf("Holders of a free address = %v", h)
	}
	if _, ok := a.Stats("nope"); ok {
		t.Error("Stats of an unknown pool succeeded")
	}
	if all := a.AllStats(); len(all) != 2 || all[0].Pool != "a" || all[1].Pool != "b" {
		t.Errorf("AllStats = %+v", all)
	}
	// Errors wrap exactly one kind.
	_, err := a.Allocate(rq("ns/a", ip("203.0.113.7")))
	for _, k := range []error{ErrInvalidRequest, ErrExhausted, ErrConflict} {
		if errors.Is(err, k) {
			t.Errorf("%v is also %v", err, k)
		}
	}
}

func TestCount(t *testing.T) {
	big1 := CountOf(1)
	if maxCount.add(big1) != maxCount {
		t.Error("add does not saturate")
	}
	if (Count{}).sub(big1) != (Count{}) {
		t.Error("sub does not stop at 0")
	}
	c := Count{hi: 1}
	if c.String() != "18446744073709551616" || c.Float64() != 18446744073709551616 {
		t.Errorf("2^64 = %s %g", c, c.Float64())
	}
	if v, ok := c.Uint64(); ok || v != 1<<64-1 {
		t.Errorf("Uint64 = %d %v", v, ok)
	}
	if c.Cmp(big1) != 1 || big1.Cmp(c) != -1 || c.Cmp(c) != 0 {
		t.Error("Cmp")
	}
	if got := c.sub(big1).add(big1); got != c {
		t.Errorf("borrow/carry: %s", got)
	}
}
