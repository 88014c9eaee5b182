package allocator

import "net/netip"

// intervalSet is a set of addresses of one family, kept as an AVL tree of
// disjoint, non-adjacent closed intervals ordered by their first address.
// Runs of consecutive addresses take one node, so a pool filled from its
// start costs one node however many addresses are in use, and free space
// costs nothing. Every operation is O(log n) in the number of intervals.
//
// The zero value is an empty set.
type intervalSet struct {
	root *ivNode
	n    int // number of intervals
}

type ivNode struct {
	lo, hi      netip.Addr
	left, right *ivNode
	height      int8
}

// len returns the number of intervals.
func (s *intervalSet) len() int { return s.n }

// floor returns the interval with the greatest start <= x, or nil.
func (s *intervalSet) floor(x netip.Addr) *ivNode {
	var best *ivNode
	for n := s.root; n != nil; {
		if n.lo.Compare(x) <= 0 {
			best, n = n, n.right
		} else {
			n = n.left
		}
	}
	return best
}

// after returns the interval with the smallest start > x, or nil.
func (s *intervalSet) after(x netip.Addr) *ivNode {
	var best *ivNode
	for n := s.root; n != nil; {
		if n.lo.Compare(x) > 0 {
			best, n = n, n.left
		} else {
			n = n.right
		}
	}
	return best
}

// covering returns the interval that contains x, or nil.
func (s *intervalSet) covering(x netip.Addr) *ivNode {
	if n := s.floor(x); n != nil && x.Compare(n.hi) <= 0 {
		return n
	}
	return nil
}

// contains reports whether x is in the set.
func (s *intervalSet) contains(x netip.Addr) bool { return s.covering(x) != nil }

// add puts x into the set, merging it with adjacent intervals. It reports
// false if x was already in it.
func (s *intervalSet) add(x netip.Addr) bool {
	prev := s.floor(x)
	if prev != nil && x.Compare(prev.hi) <= 0 {
		return false
	}
	next := s.after(x)
	joinPrev := prev != nil && prev.hi.Next() == x
	joinNext := next != nil && x.Next() == next.lo
	switch {
	case joinPrev && joinNext:
		hi := next.hi
		s.root = s.delete(s.root, next.lo)
		// Deleting may move node contents around; find prev again.
		s.floor(x).hi = hi
	case joinPrev:
		prev.hi = x
	case joinNext:
		// Still between prev and next's old start: the order holds.
		next.lo = x
	default:
		s.root = s.insert(s.root, x, x)
	}
	return true
}

// remove takes x out of the set, splitting its interval if needed. It
// reports false if x was not in it.
func (s *intervalSet) remove(x netip.Addr) bool {
	n := s.covering(x)
	switch {
	case n == nil:
		return false
	case n.lo == n.hi:
		s.root = s.delete(s.root, n.lo)
	case x == n.lo:
		n.lo = x.Next()
	case x == n.hi:
		n.hi = x.Prev()
	default:
		hi := n.hi
		n.hi = x.Prev()
		s.root = s.insert(s.root, x.Next(), hi)
	}
	return true
}

// each calls f for every interval in ascending order.
func (s *intervalSet) each(f func(lo, hi netip.Addr)) {
	var walk func(*ivNode)
	walk = func(n *ivNode) {
		if n == nil {
			return
		}
		walk(n.left)
		f(n.lo, n.hi)
		walk(n.right)
	}
	walk(s.root)
}

func height(n *ivNode) int8 {
	if n == nil {
		return 0
	}
	return n.height
}

func (n *ivNode) fix() {
	n.height = max(height(n.left), height(n.right)) + 1
}

func rotateRight(n *ivNode) *ivNode {
	l := n.left
	n.left, l.right = l.right, n
	n.fix()
	l.fix()
	return l
}

func rotateLeft(n *ivNode) *ivNode {
	r := n.right
	n.right, r.left = r.left, n
	n.fix()
	r.fix()
	return r
}

func rebalance(n *ivNode) *ivNode {
	n.fix()
	switch b := height(n.left) - height(n.right); {
	case b > 1:
		if height(n.left.left) < height(n.left.right) {
			n.left = rotateLeft(n.left)
		}
		return rotateRight(n)
	case b < -1:
		if height(n.right.right) < height(n.right.left) {
			n.right = rotateRight(n.right)
		}
		return rotateLeft(n)
	}
	return n
}

func (s *intervalSet) insert(n *ivNode, lo, hi netip.Addr) *ivNode {
	if n == nil {
		s.n++
		return &ivNode{lo: lo, hi: hi, height: 1}
	}
	if lo.Less(n.lo) {
		n.left = s.insert(n.left, lo, hi)
	} else {
		n.right = s.insert(n.right, lo, hi)
	}
	return rebalance(n)
}

// delete removes the node starting at lo from the subtree n.
func (s *intervalSet) delete(n *ivNode, lo netip.Addr) *ivNode {
	if n == nil {
		return nil
	}
	switch c := lo.Compare(n.lo); {
	case c < 0:
		n.left = s.delete(n.left, lo)
	case c > 0:
		n.right = s.delete(n.right, lo)
	default:
		if n.left == nil || n.right == nil {
			s.n--
			if n.left != nil {
				return n.left
			}
			return n.right
		}
		m := n.right
		for m.left != nil {
			m = m.left
		}
		n.lo, n.hi = m.lo, m.hi
		n.right = s.delete(n.right, m.lo)
	}
	return rebalance(n)
}
