// Package secureserve serves an HTTP handler (the Prometheus metrics) the way
// the kubelet serves its own: over TLS, to callers that present a bearer
// token the API server accepts (TokenReview) and that are allowed the
// request's verb on its path as a non-resource URL (SubjectAccessReview).
// Plain HTTP without authentication is allowed on loopback addresses only.
package secureserve

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Options says how to serve.
type Options struct {
	// Addr is the address to listen on (host:port).
	Addr string
	// Secure serves TLS with authentication and authorization. When false,
	// Addr must be a loopback address.
	Secure bool
	// CertDir holds tls.crt and tls.key; empty means a self-signed
	// certificate made at start (Prometheus then scrapes with
	// insecureSkipVerify, as it does the kubelet's).
	CertDir string
	// Client asks the API server for token and access reviews.
	Client kubernetes.Interface
	// CacheTTL is how long an answer is reused for one token and request;
	// default 10 s.
	CacheTTL time.Duration
	Logger   *slog.Logger
}

// Serve listens on o.Addr at once (so a busy port fails the start) and
// serves h until ctx ends.
func Serve(ctx context.Context, o Options, h http.Handler) error {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if !o.Secure {
		if !Loopback(o.Addr) {
			return fmt.Errorf("%s: plain HTTP without authentication is only allowed on a loopback address (127.0.0.1, ::1 or localhost)", o.Addr)
		}
	} else {
		if o.Client == nil {
			return errors.New("secure serving needs an API client")
		}
		h = (&Filter{Client: o.Client, TTL: o.CacheTTL, Logger: o.Logger}).Wrap(h)
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	if o.Secure {
		cert, err := certificate(o.CertDir)
		if err != nil {
			_ = ln.Close()
			return err
		}
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			o.Logger.Error("http server", slog.String("addr", o.Addr), slog.Any("error", err))
		}
	}()
	context.AfterFunc(ctx, func() { _ = srv.Close() })
	return nil
}

// Loopback reports whether addr (host:port) names only loopback addresses.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func certificate(dir string) (tls.Certificate, error) {
	if dir != "" {
		return tls.LoadX509KeyPair(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, err
	}
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "herald-metrics"},
		DNSNames:     []string{host, "localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// Filter lets a request through when its bearer token is valid and its
// user may do the request's verb on its path.
type Filter struct {
	Client kubernetes.Interface
	TTL    time.Duration
	Logger *slog.Logger

	mu    sync.Mutex
	cache map[[32]byte]decision
}

type decision struct {
	status  int // 0: allowed
	reason  string
	expires time.Time
}

// maxCached bounds the cache: a caller that sends many tokens costs API
// reviews, not memory.
const maxCached = 1024

// Wrap returns h behind the filter.
func (f *Filter) Wrap(h http.Handler) http.Handler {
	if f.TTL == 0 {
		f.TTL = 10 * time.Second
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || token == "" {
			http.Error(w, "Unauthorized: a bearer token is required", http.StatusUnauthorized)
			return
		}
		d := f.decide(r.Context(), strings.TrimSpace(token), r.URL.Path, verb(r.Method))
		if d.status != 0 {
			http.Error(w, d.reason, d.status)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func verb(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead:
		return "get"
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		return "delete"
	}
	return strings.ToLower(method)
}

func (f *Filter) decide(ctx context.Context, token, path, verb string) decision {
	key := sha256.Sum256([]byte(token + "\x00" + verb + "\x00" + path))
	now := time.Now()
	f.mu.Lock()
	if d, ok := f.cache[key]; ok && now.Before(d.expires) {
		f.mu.Unlock()
		return d
	}
	f.mu.Unlock()

	d := f.review(ctx, token, path, verb)
	if d.status == http.StatusInternalServerError {
		return d // not cached: the API server may answer next time
	}
	d.expires = now.Add(f.TTL)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cache == nil || len(f.cache) >= maxCached {
		for k, v := range f.cache {
			if !now.Before(v.expires) {
				delete(f.cache, k)
			}
		}
		if f.cache == nil || len(f.cache) >= maxCached {
			f.cache = map[[32]byte]decision{}
		}
	}
	f.cache[key] = d
	return d
}

func (f *Filter) review(ctx context.Context, token, path, verb string) decision {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tr, err := f.Client.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{
		Spec: authnv1.TokenReviewSpec{Token: token},
	}, metav1.CreateOptions{})
	if err != nil {
		f.Logger.Warn("metrics: token review failed", slog.Any("error", err))
		return decision{status: http.StatusInternalServerError, reason: "token review failed"}
	}
	if !tr.Status.Authenticated {
		return decision{status: http.StatusUnauthorized, reason: "Unauthorized"}
	}
	u := tr.Status.User
	extra := map[string]authzv1.ExtraValue{}
	for k, v := range u.Extra {
		extra[k] = authzv1.ExtraValue(v)
	}
	sar, err := f.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authzv1.SubjectAccessReview{
		Spec: authzv1.SubjectAccessReviewSpec{
			User: u.Username, UID: u.UID, Groups: u.Groups, Extra: extra,
			NonResourceAttributes: &authzv1.NonResourceAttributes{Path: path, Verb: verb},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		f.Logger.Warn("metrics: access review failed", slog.Any("error", err))
		return decision{status: http.StatusInternalServerError, reason: "access review failed"}
	}
	if !sar.Status.Allowed {
		return decision{status: http.StatusForbidden, reason: fmt.Sprintf("Forbidden: %s may not %s %s", u.Username, verb, path)}
	}
	return decision{}
}
