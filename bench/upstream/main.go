package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mxedge/mxedge/bench/pattern"
)

const versionsBody = `{"versions":["r0.0.1","r0.1.0","r0.2.0","r0.3.0","r0.4.0","r0.5.0","r0.6.0","r0.6.1","v1.1","v1.2","v1.3","v1.4","v1.5","v1.6","v1.7","v1.8","v1.9","v1.10","v1.11","v1.12"],"unstable_features":{"org.matrix.label_based_filtering":true,"org.matrix.e2e_cross_signing":true,"org.matrix.msc2432":true,"uk.half-shot.msc2666.query_mutual_rooms":false,"io.element.e2ee_forced.public":false,"io.element.e2ee_forced.private":false,"io.element.e2ee_forced.trusted_private":false,"org.matrix.msc3026.busy_presence":false,"org.matrix.msc2285.stable":true,"org.matrix.msc3827.stable":true,"org.matrix.msc3440.stable":true,"org.matrix.msc3771":true,"org.matrix.msc3773":false,"fi.mau.msc2815":false,"org.matrix.simplified_msc3575":true}}`

const wellKnownBody = `{"m.homeserver":{"base_url":"https://bench.local/"}}`

type server struct {
	held     atomic.Int64
	requests atomic.Int64
	bytesIn  atomic.Int64
	bytesOut atomic.Int64
	block    []byte
}

func main() {
	addrs := flag.String("listen", "127.0.0.1:18001", "comma-separated listen addresses (one server, several ports)")
	flag.Parse()
	s := &server{block: pattern.Block()}
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       180 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	var lns []net.Listener
	for _, a := range strings.Split(*addrs, ",") {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			fmt.Fprintln(os.Stderr, "upstream:", err)
			os.Exit(1)
		}
		lns = append(lns, ln)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, len(lns))
	for _, ln := range lns {
		go func() { errc <- srv.Serve(ln) }()
	}
	fmt.Fprintf(os.Stderr, "upstream: listening on %s\n", *addrs)
	select {
	case <-ctx.Done():
	case err := <-errc:
		fmt.Fprintln(os.Stderr, "upstream:", err)
		os.Exit(1)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	_ = srv.Close()
}

func (s *server) cors(h http.Header) {
	// Synapse sends its own CORS headers; a proxy must replace, not duplicate, them.
	h["Access-Control-Allow-Origin"] = []string{"*"}
	h["Access-Control-Allow-Methods"] = []string{"GET, HEAD, POST, PUT, DELETE, OPTIONS"}
	h["Access-Control-Allow-Headers"] = []string{"X-Requested-With, Content-Type, Authorization, Date"}
	h["Access-Control-Expose-Headers"] = []string{"Synapse-Trace-Id, Server"}
}

func (s *server) json(w http.ResponseWriter, code int, body string) {
	h := w.Header()
	s.cors(h)
	h["Content-Type"] = []string{"application/json"}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(code)
	n, _ := io.WriteString(w, body)
	s.bytesOut.Add(int64(n))
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	p := r.URL.Path
	switch {
	case r.Method == http.MethodOptions:
		s.cors(w.Header())
		w.WriteHeader(http.StatusNoContent)
	case p == "/_matrix/client/versions":
		s.json(w, 200, versionsBody)
	case p == "/.well-known/matrix/client":
		s.json(w, 200, wellKnownBody)
	case p == "/health":
		w.Header()["Content-Type"] = []string{"text/plain"}
		io.WriteString(w, "OK")
	case p == "/bench/held":
		io.WriteString(w, strconv.FormatInt(s.held.Load(), 10))
	case p == "/bench/stats":
		fmt.Fprintf(w, `{"held":%d,"requests":%d,"bytes_in":%d,"bytes_out":%d}`,
			s.held.Load(), s.requests.Load(), s.bytesIn.Load(), s.bytesOut.Load())
	case r.Method == http.MethodPut && strings.HasPrefix(p, "/_matrix/client/v3/rooms/") && strings.Contains(p, "/send/"):
		n, err := io.Copy(io.Discard, r.Body)
		s.bytesIn.Add(n)
		if err != nil {
			s.json(w, 400, `{"errcode":"M_BAD_JSON","error":"body"}`)
			return
		}
		s.json(w, 200, `{"event_id":"$Kx3Q9bench0000000000000000000000000000000"}`)
	case p == "/_matrix/client/v3/sync":
		s.sync(w, r)
	case r.Method == http.MethodPost && p == "/_matrix/media/v3/upload":
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		s.bytesIn.Add(n)
		if err != nil {
			s.json(w, 400, `{"errcode":"M_UNKNOWN","error":"upload cut"}`)
			return
		}
		s.json(w, 200, fmt.Sprintf(`{"content_uri":"mxc://bench.local/upload","sha256":"%s","bytes":%d}`,
			hex.EncodeToString(h.Sum(nil)), n))
	case strings.HasPrefix(p, "/_matrix/client/v1/media/download/bench/"):
		s.download(w, r, strings.TrimPrefix(p, "/_matrix/client/v1/media/download/bench/"))
	default:
		s.json(w, 404, `{"errcode":"M_UNRECOGNIZED","error":"Unrecognized request"}`)
	}
}

func (s *server) sync(w http.ResponseWriter, r *http.Request) {
	ms, _ := strconv.Atoi(r.URL.Query().Get("timeout"))
	if ms > 0 {
		s.held.Add(1)
		t := time.NewTimer(time.Duration(ms) * time.Millisecond)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			s.held.Add(-1)
			return
		}
		s.held.Add(-1)
	}
	s.json(w, 200, `{"next_batch":"s1_bench","rooms":{},"presence":{},"account_data":{}}`)
}

func (s *server) download(w http.ResponseWriter, r *http.Request, size string) {
	n, err := strconv.ParseInt(size, 10, 64)
	if err != nil || n < 0 {
		s.json(w, 400, `{"errcode":"M_INVALID_PARAM","error":"size"}`)
		return
	}
	h := w.Header()
	s.cors(h)
	h["Content-Type"] = []string{"application/octet-stream"}
	h["Content-Length"] = []string{strconv.FormatInt(n, 10)}
	w.WriteHeader(200)
	if r.Method == http.MethodHead {
		return
	}
	for n > 0 {
		c := int64(len(s.block))
		if c > n {
			c = n
		}
		m, err := w.Write(s.block[:c])
		s.bytesOut.Add(int64(m))
		if err != nil {
			return
		}
		n -= int64(m)
	}
}
