package k8s

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// TestWireFormats checks that the clientset asks for protobuf and still
// takes a JSON answer, and that the client of Herald's kinds (custom
// resources, JSON only) asks for JSON.
func TestWireFormats(t *testing.T) {
	var mu sync.Mutex
	accept := map[string]string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		accept[r.URL.Path] = r.Header.Get("Accept")
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json") // a server that answers in JSON
		if strings.HasPrefix(r.URL.Path, "/apis/herald.io/") {
			_, _ = w.Write([]byte(`{"apiVersion":"herald.io/v1beta1","kind":"IPAddressPoolList","items":[]}`))
			return
		}
		_, _ = w.Write([]byte(`{"apiVersion":"v1","kind":"ServiceList","items":[{"metadata":{"name":"a","namespace":"n"}}]}`))
	}))
	defer srv.Close()
	c, err := NewClients(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	list, err := c.Kube.CoreV1().Services("").List(context.Background(), metav1.ListOptions{})
	if err != nil || len(list.Items) != 1 || list.Items[0].Name != "a" {
		t.Fatalf("JSON fallback: %v, %+v", err, list)
	}
	if err := c.Herald.Get().Resource(ResourceIPAddressPools).Do(context.Background()).Error(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := accept["/api/v1/services"]; !strings.HasPrefix(got, ContentTypeProtobuf+",") || !strings.Contains(got, "application/json") {
		t.Errorf("clientset Accept: %q, want protobuf then JSON", got)
	}
	if got := accept["/apis/herald.io/v1beta1/ipaddresspools"]; got != "application/json" {
		t.Errorf("herald.io Accept: %q, want JSON only", got)
	}
}

// pastDeadline is a context whose deadline has passed but whose timer has
// not fired yet: what a request sees when its process resumes after a
// stop, before the runtime has cancelled its context.
type pastDeadline struct{ context.Context }

func (pastDeadline) Deadline() (time.Time, bool) { return time.Now().Add(-time.Second), true }

type countingRT struct{ sent int }

func (c *countingRT) RoundTrip(*http.Request) (*http.Response, error) {
	c.sent++
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody}, nil
}

// TestLateGuard: a request whose deadline has passed by the clock is not
// sent, even while its context still says it is live.
func TestLateGuard(t *testing.T) {
	next := &countingRT{}
	g := lateGuard{next}
	late, err := http.NewRequestWithContext(pastDeadline{context.Background()}, http.MethodPatch, "https://api/v1/services", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.RoundTrip(late); !errors.Is(err, context.DeadlineExceeded) || next.sent != 0 {
		t.Fatalf("late request: error %v, %d sent; want DeadlineExceeded and none sent", err, next.sent)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, c := range []context.Context{ctx, context.Background()} {
		req, _ := http.NewRequestWithContext(c, http.MethodPatch, "https://api/v1/services", nil)
		if resp, err := g.RoundTrip(req); err != nil {
			t.Fatalf("request in time: %v", err)
		} else {
			_ = resp.Body.Close()
		}
	}
	if next.sent != 2 {
		t.Errorf("%d requests sent, want 2", next.sent)
	}
}
