package secureserve

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// reviewer is a fake API server for the reviews: token "reader" is
// user "prometheus", allowed GET /metrics; token "other" is user "nobody",
// allowed nothing; any other token is not authenticated. down makes the
// API server fail.
func reviewer(t *testing.T, calls *int, down *bool) *fake.Clientset {
	t.Helper()
	c := fake.NewClientset()
	c.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		*calls++
		if *down {
			return true, nil, errors.New("connection refused")
		}
		tr := a.(k8stesting.CreateAction).GetObject().(*authnv1.TokenReview)
		switch tr.Spec.Token {
		case "reader":
			tr.Status = authnv1.TokenReviewStatus{Authenticated: true, User: authnv1.UserInfo{Username: "prometheus"}}
		case "other":
			tr.Status = authnv1.TokenReviewStatus{Authenticated: true, User: authnv1.UserInfo{Username: "nobody"}}
		}
		return true, tr, nil
	})
	c.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		sar := a.(k8stesting.CreateAction).GetObject().(*authzv1.SubjectAccessReview)
		na := sar.Spec.NonResourceAttributes
		sar.Status.Allowed = sar.Spec.User == "prometheus" && na != nil && na.Path == "/metrics" && na.Verb == "get"
		return true, sar, nil
	})
	return c
}

func TestFilter(t *testing.T) {
	calls, down := 0, false
	f := &Filter{Client: reviewer(t, &calls, &down), Logger: slog.New(slog.DiscardHandler)}
	h := f.Wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("herald_up 1\n")) }))
	get := func(token, path string) int {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	for _, c := range []struct {
		token, path string
		want        int
	}{
		{"", "/metrics", http.StatusUnauthorized},
		{"forged", "/metrics", http.StatusUnauthorized},
		{"other", "/metrics", http.StatusForbidden},
		{"reader", "/debug", http.StatusForbidden},
		{"reader", "/metrics", http.StatusOK},
	} {
		if got := get(c.token, c.path); got != c.want {
			t.Errorf("token %q on %s: status %d, want %d", c.token, c.path, got, c.want)
		}
	}
	// Decisions are cached: a scrape every few seconds costs no review.
	before := calls
	for range 5 {
		get("reader", "/metrics")
	}
	if calls != before {
		t.Errorf("%d token reviews for 5 scrapes within the TTL", calls-before)
	}
	// An API outage refuses new callers and is not cached.
	down = true
	if got := get("new", "/metrics"); got != http.StatusInternalServerError {
		t.Errorf("review failure: status %d, want 500", got)
	}
	down = false
	if got := get("new", "/metrics"); got != http.StatusUnauthorized {
		t.Errorf("after the outage: status %d, want the API server's answer (401)", got)
	}
}

func TestLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:7472": true, "[::1]:7472": true, "localhost:7472": true,
		":7472": false, "0.0.0.0:7472": false, "198.18.0.11:7472": false,
	} {
		if got := Loopback(addr); got != want {
			t.Errorf("Loopback(%q) = %v, want %v", addr, got, want)
		}
	}
}
