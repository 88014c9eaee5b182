package allocator

import (
	"fmt"
	"strconv"
	"strings"
)

// The kinds of allocation failure. Every error the Allocator returns wraps
// one of them, so errors.Is tells the controller which it is, while the
// message, meant for a Service event, says what to do.
var (
	// ErrInvalidRequest means the Service asks for something contradictory,
	// such as two IPv4 addresses or an IPv6 address for an IPv4-only Service.
	ErrInvalidRequest = kindError("invalid request")
	// ErrNoPool means no pool can serve the request: a requested IP is in no
	// pool, a requested pool does not exist or does not select the Service,
	// or no pool selects the Service or has its family.
	ErrNoPool = kindError("no suitable pool")
	// ErrExhausted means the pools that could serve the Service have no free
	// address of a family it needs.
	ErrExhausted = kindError("no free address")
	// ErrConflict means a requested or restored address is used by another
	// Service it cannot share with.
	ErrConflict = kindError("address in use")
)

type kindError string

func (e kindError) Error() string { return string(e) }

// allocError carries a message for the user and the kind it wraps.
type allocError struct {
	kind error
	msg  string
}

func (e *allocError) Error() string { return e.msg }
func (e *allocError) Unwrap() error { return e.kind }

func errorf(kind error, format string, args ...any) error {
	return &allocError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// quoteList returns names as `"a", "b" and 3 more`.
func quoteList(names []string) string {
	const shown = 5
	var b strings.Builder
	for i, n := range names {
		if i == shown {
			b.WriteString(" and " + strconv.Itoa(len(names)-shown) + " more")
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(n))
	}
	return b.String()
}
