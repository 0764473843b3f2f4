package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

var (
	notFoundBody  = []byte(`{"errcode":"M_NOT_FOUND","error":"Not found"}`)
	badMethodBody = []byte(`{"errcode":"M_UNRECOGNIZED","error":"Method not allowed"}`)
	defaultOKBody = []byte("ok\n")
	allowGetHead  = "GET, HEAD"
	jsonType      = "application/json"
	plainTextType = "text/plain; charset=utf-8"
)

// OpsHandler serves the ops listener: /metrics (the exposition of g, in the
// text, OpenMetrics or protobuf format the scraper asks for: native histograms
// need protobuf), /healthz and /readyz (delegated to healthz and readyz; a nil
// handler answers 200 "ok"). Other paths get 404 JSON; methods other than GET
// and HEAD get 405 JSON. The handler is safe for concurrent use.
func OpsHandler(g prometheus.Gatherer, healthz, readyz http.Handler) http.Handler {
	if healthz == nil {
		healthz = http.HandlerFunc(okHandler)
	}
	if readyz == nil {
		readyz = http.HandlerFunc(okHandler)
	}
	metrics := promhttp.HandlerFor(g, promhttp.HandlerOpts{
		EnableOpenMetrics: true,
		// Serve what could be gathered rather than a bare 500 when one collector fails.
		ErrorHandling: promhttp.ContinueOnError,
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var h http.Handler
		switch r.URL.Path {
		case "/metrics":
			h = metrics
		case "/healthz":
			h = healthz
		case "/readyz":
			h = readyz
		default:
			writeJSON(w, http.StatusNotFound, notFoundBody)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", allowGetHead)
			writeJSON(w, http.StatusMethodNotAllowed, badMethodBody)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func okHandler(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", plainTextType)
	w.WriteHeader(http.StatusOK)
	w.Write(defaultOKBody)
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", jsonType)
	w.WriteHeader(status)
	w.Write(body)
}
