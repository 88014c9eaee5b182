package election

import (
	"cmp"
	"slices"
)

// Change is one key whose owner changed. An empty Old means the key had no
// owner (it is new, or no node was eligible); an empty New means it has none
// now.
type Change struct {
	Key string
	Old string
	New string
}

// entry is the state of one service key.
type entry struct {
	svc   Service
	seed  uint64 // keySeed(svc.Key)
	owner string // "" when no node is eligible
	score uint64 // owner's score, valid when owner != ""
	pref  bool   // the owner is a preferred node (see Service.Preferred)
}

// Table keeps the owner of every service key as nodes and services come and
// go, doing only the work a change requires:
//   - a node leaving re-elects only the keys it owned;
//   - a node joining (or changing) computes one score per key and moves only
//     the keys it now wins (and re-elects the keys it owned and can no
//     longer serve);
//   - a service change re-elects that key only.
//
// The nodes in the table are the candidates that are alive; the caller adds
// a node when memberlist reports it alive and removes it when memberlist
// reports it gone. Tables fed the same nodes and services report the same
// owners, whatever the order of the calls. A Table is not safe for
// concurrent use.
type Table struct {
	nodes map[string]*Node
	keys  map[string]*entry
	owned map[string]map[*entry]struct{} // owner name -> its entries
}

// NewTable returns an empty table.
func NewTable() *Table {
	return &Table{
		nodes: make(map[string]*Node),
		keys:  make(map[string]*entry),
		owned: make(map[string]map[*entry]struct{}),
	}
}

// SetNode adds the node n, or replaces the node of the same name, and
// returns the keys whose owner changed, sorted by key. The table keeps its
// own copy of n (but shares the Labels map and Interfaces slice, which the
// caller must not modify afterwards).
func (t *Table) SetNode(n Node) []Change {
	nn := &n
	_, existed := t.nodes[n.Name]
	t.nodes[n.Name] = nn
	var changes []Change
	if existed {
		// Keys the node owned stay with it while it is still eligible and
		// no less preferred: its score does not depend on its attributes.
		for e := range t.owned[n.Name] {
			switch p := e.svc.Preferred(nn); {
			case !e.svc.Eligible(nn), e.pref && !p:
				changes = t.elect(e, changes)
			default:
				e.pref = p
			}
		}
	}
	for _, e := range t.keys {
		if e.owner == n.Name || !e.svc.Eligible(nn) {
			continue
		}
		s, p := nodeScore(e.seed, n.Name), e.svc.Preferred(nn)
		if e.owner == "" || outranks(p, s, n.Name, e.pref, e.score, e.owner) {
			changes = t.move(e, n.Name, s, p, changes)
		}
	}
	return sortChanges(changes)
}

// RemoveNode removes the named node, because it left the membership or is no
// longer a candidate, and returns the keys whose owner changed: only keys the
// node owned can change.
func (t *Table) RemoveNode(name string) []Change {
	if _, ok := t.nodes[name]; !ok {
		return nil
	}
	delete(t.nodes, name)
	var changes []Change
	for e := range t.owned[name] {
		changes = t.elect(e, changes)
	}
	delete(t.owned, name)
	return sortChanges(changes)
}

// SetService adds or replaces the service of key s.Key, re-elects its owner,
// and returns the change, if any. The table keeps s as given; the caller must
// not modify its slices and sets afterwards.
func (t *Table) SetService(s Service) []Change {
	e, ok := t.keys[s.Key]
	if !ok {
		e = &entry{seed: keySeed(s.Key)}
		t.keys[s.Key] = e
	}
	e.svc = s
	return t.elect(e, nil)
}

// RemoveService forgets the key and returns the change that releases it, if
// it had an owner.
func (t *Table) RemoveService(key string) []Change {
	e, ok := t.keys[key]
	if !ok {
		return nil
	}
	delete(t.keys, key)
	if e.owner == "" {
		return nil
	}
	t.disown(e)
	return []Change{{Key: key, Old: e.owner}}
}

// Owner returns the owner of key, and false if the key is unknown or no node
// is eligible.
func (t *Table) Owner(key string) (string, bool) {
	e, ok := t.keys[key]
	if !ok || e.owner == "" {
		return "", false
	}
	return e.owner, true
}

// Owned returns the keys the named node owns, sorted.
func (t *Table) Owned(node string) []string {
	keys := make([]string, 0, len(t.owned[node]))
	for e := range t.owned[node] {
		keys = append(keys, e.svc.Key)
	}
	slices.Sort(keys)
	return keys
}

// Node returns the named node as the table holds it.
func (t *Table) Node(name string) (Node, bool) {
	n, ok := t.nodes[name]
	if !ok {
		return Node{}, false
	}
	return *n, true
}

// Service returns the service of key as the table holds it.
func (t *Table) Service(key string) (Service, bool) {
	e, ok := t.keys[key]
	if !ok {
		return Service{}, false
	}
	return e.svc, true
}

// Len returns the number of service keys.
func (t *Table) Len() int { return len(t.keys) }

// elect recomputes e's owner over every node and appends the change, if
// any, to changes.
func (t *Table) elect(e *entry, changes []Change) []Change {
	var (
		best  string
		score uint64
		pref  bool
	)
	for name, n := range t.nodes {
		if !e.svc.Eligible(n) {
			continue
		}
		s, p := nodeScore(e.seed, name), e.svc.Preferred(n)
		if best == "" || outranks(p, s, name, pref, score, best) {
			best, score, pref = name, s, p
		}
	}
	if best == e.owner {
		e.score, e.pref = score, pref
		return changes
	}
	return t.move(e, best, score, pref, changes)
}

// move gives e to owner (which may be "") and records the change.
func (t *Table) move(e *entry, owner string, score uint64, pref bool, changes []Change) []Change {
	old := e.owner
	t.disown(e)
	e.owner, e.score, e.pref = owner, score, pref
	if owner != "" {
		set := t.owned[owner]
		if set == nil {
			set = make(map[*entry]struct{})
			t.owned[owner] = set
		}
		set[e] = struct{}{}
	}
	return append(changes, Change{Key: e.svc.Key, Old: old, New: owner})
}

func (t *Table) disown(e *entry) {
	if e.owner == "" {
		return
	}
	set := t.owned[e.owner]
	delete(set, e)
	if len(set) == 0 {
		delete(t.owned, e.owner)
	}
}

func sortChanges(c []Change) []Change {
	slices.SortFunc(c, func(a, b Change) int { return cmp.Compare(a.Key, b.Key) })
	return c
}
