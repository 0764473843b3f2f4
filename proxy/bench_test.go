package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// benchClient keeps enough idle connections for parallel benchmarks.
func benchClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}}
}

func benchGet(b *testing.B, url string) {
	c := benchClient()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := c.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				b.Errorf("status %d", res.StatusCode)
				return
			}
		}
	})
}

var versionsBody = []byte(`{"versions":["r0.6.1","v1.1","v1.2","v1.3","v1.4","v1.5","v1.6","v1.7","v1.8","v1.9","v1.10","v1.11"],"unstable_features":{}}`)

func versionsHandler(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(versionsBody)
}

// BenchmarkDirect is the fake homeserver alone: the baseline.
func BenchmarkDirect(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(versionsHandler))
	defer up.Close()
	benchGet(b, up.URL+"/_matrix/client/versions")
}

// BenchmarkProxied is the same request through mxedge's whole chain.
func BenchmarkProxied(b *testing.B) {
	e := newEdge(b, "log: {access: false}\n", versionsHandler)
	benchGet(b, e.URL+"/_matrix/client/versions")
}

// BenchmarkWellKnown is a local answer through the whole chain.
func BenchmarkWellKnown(b *testing.B) {
	e := newEdge(b, "log: {access: false}\n", versionsHandler)
	benchGet(b, e.URL+"/.well-known/matrix/client")
}
