package k8s

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

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
