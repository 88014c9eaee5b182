// Command agnhost is the real-nodes test bed's stand-in for
// registry.k8s.io/e2e-test-images/agnhost, which the examples use as a web
// backend: it implements `agnhost netexec --http-port=N`, answering every
// request with the pod's name and the client's source address as JSON
// ({"pod": "...", "client": "ip:port"}, like the bed's podserver), and
// /healthz. Nothing is pulled: the bed imports it under the examples' name.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if len(os.Args) < 2 || os.Args[1] != "netexec" {
		fmt.Fprintln(os.Stderr, "usage: agnhost netexec [--http-port=8080]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("netexec", flag.ExitOnError)
	port := fs.Int("http-port", 8080, "HTTP port")
	_ = fs.Parse(os.Args[2:])
	name, _ := os.Hostname()
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"pod": name, "client": r.RemoteAddr})
	})
	srv := &http.Server{Addr: fmt.Sprintf(":%d", *port), Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("netexec serving", slog.String("pod", name), slog.Int("port", *port))
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("serve", slog.Any("error", err))
		os.Exit(1)
	}
}
