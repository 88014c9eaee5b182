package procstat

import (
	"net/http"
	"net/http/pprof"
)

// PprofHandler serves Go's runtime profiles under /debug/pprof/ (heap,
// allocs, profile, goroutine, ...), for the binaries' opt-in --pprof-addr.
// It is a mux of its own: nothing is registered on http.DefaultServeMux.
func PprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
