package election

import (
	"cmp"
	"slices"
)

// FNV-1a 64-bit parameters.
const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// keySeparator ends the key in the hashed string so that ("ab", "c") and
// ("a", "bc") hash differently. It is 0xff because that byte never occurs in
// valid UTF-8, so it cannot occur inside a node name or a key.
const keySeparator = 0xff

// Score returns the rendezvous score of node for key: the owner of key is the
// eligible node with the highest score.
//
// The function is part of the wire contract between speakers: every speaker
// of a cluster, whatever its version, must compute the same score, so it must
// never change. It is FNV-1a 64 over key, the byte 0xff and node, followed by
// the MurmurHash3 64-bit finalizer (FNV alone mixes the last bytes poorly
// into the high bits, which decide the comparison). It is not seeded, unlike
// hash/maphash, and does not allocate.
func Score(node, key string) uint64 {
	return nodeScore(keySeed(key), node)
}

// keySeed hashes the key part once; nodeScore continues from it for each
// node, so that scoring one key against many nodes hashes the key once.
func keySeed(key string) uint64 {
	h := uint64(fnvOffset64)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= fnvPrime64
	}
	h ^= keySeparator
	h *= fnvPrime64
	return h
}

func nodeScore(seed uint64, node string) uint64 {
	h := seed
	for i := 0; i < len(node); i++ {
		h ^= uint64(node[i])
		h *= fnvPrime64
	}
	return fmix64(h)
}

// fmix64 is the MurmurHash3 64-bit finalizer.
func fmix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// beats reports whether node a with score sa ranks above node b with score
// sb. Equal scores (a 2^-64 event) are broken by the lower name, so the order
// is total and the same on every speaker.
func beats(sa uint64, a string, sb uint64, b string) bool {
	if sa != sb {
		return sa > sb
	}
	return a < b
}

// outranks is beats with the preference first: a preferred node (pa, pb)
// ranks above any node that is not.
func outranks(pa bool, sa uint64, a string, pb bool, sb uint64, b string) bool {
	if pa != pb {
		return pa
	}
	return beats(sa, a, sb, b)
}

// Rank returns nodes ordered from the most to the least preferred owner of
// key. The first node that can serve key (for example, the first one that has
// the required interface) is its owner; the rest is the fallback order. Rank
// does not modify nodes.
func Rank(key string, nodes []string) []string {
	seed := keySeed(key)
	type scored struct {
		name  string
		score uint64
	}
	s := make([]scored, len(nodes))
	for i, n := range nodes {
		s[i] = scored{n, nodeScore(seed, n)}
	}
	slices.SortFunc(s, func(a, b scored) int {
		if a.score != b.score {
			return -cmp.Compare(a.score, b.score)
		}
		return cmp.Compare(a.name, b.name)
	})
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = x.name
	}
	return out
}

// Owner returns the highest-ranked node of nodes for key for which eligible
// returns true, and false if there is none. A nil eligible accepts every
// node. It is the same as taking the first eligible node of [Rank], in
// O(len(nodes)) and without allocating.
func Owner(key string, nodes []string, eligible func(node string) bool) (string, bool) {
	seed := keySeed(key)
	var (
		best  string
		score uint64
		found bool
	)
	for _, n := range nodes {
		if eligible != nil && !eligible(n) {
			continue
		}
		s := nodeScore(seed, n)
		if !found || beats(s, n, score, best) {
			best, score, found = n, s, true
		}
	}
	return best, found
}
