package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/http/pprof"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

const wellKnownBody = `{"m.homeserver":{"base_url":"https://bench.local/"}}`

func cors(h http.Header) {
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, DELETE, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "X-Requested-With, Content-Type, Authorization")
	h.Set("Access-Control-Expose-Headers", "Retry-After")
}

func main() {
	listen := flag.String("listen", "127.0.0.1:18010", "plain HTTP listen address")
	listenTLS := flag.String("listen-tls", "", "TLS listen address (needs -cert and -key)")
	cert := flag.String("cert", "", "PEM certificate")
	key := flag.String("key", "", "PEM key")
	upstream := flag.String("upstream", "http://127.0.0.1:18001", "upstream URL")
	idle := flag.Int("idle-per-host", 1024, "idle upstream connections kept per host")
	pprofAddr := flag.String("pprof", "", "serve net/http/pprof on this address (for profiles under load)")
	flag.Parse()

	u, err := url.Parse(*upstream)
	if err != nil {
		fmt.Fprintln(os.Stderr, "goproxy:", err)
		os.Exit(2)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 0
	tr.MaxIdleConnsPerHost = *idle
	tr.IdleConnTimeout = 90 * time.Second
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		Transport: tr,
		ModifyResponse: func(res *http.Response) error {
			cors(res.Header)
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			cors(w.Header())
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadGateway)
			io.WriteString(w, `{"errcode":"M_UNKNOWN","error":"upstream unavailable"}`)
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/.well-known/matrix/client":
			cors(w.Header())
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "public, max-age=3600")
			io.WriteString(w, wellKnownBody)
		case r.Method == http.MethodOptions && strings.HasPrefix(r.URL.Path, "/_matrix/"):
			cors(w.Header())
			w.Header().Set("Access-Control-Max-Age", "86400")
			w.WriteHeader(http.StatusNoContent)
		default:
			rp.ServeHTTP(w, r)
		}
	})

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var servers []*http.Server
	serve := func(addr string, tc *tls.Config) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "goproxy:", err)
			os.Exit(1)
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second,
			TLSConfig: tc, ErrorLog: log.New(io.Discard, "", 0)}
		servers = append(servers, srv)
		go func() {
			if tc != nil {
				err = srv.ServeTLS(ln, *cert, *key)
			} else {
				err = srv.Serve(ln)
			}
			if err != nil && err != http.ErrServerClosed {
				fmt.Fprintln(os.Stderr, "goproxy:", err)
				os.Exit(1)
			}
		}()
	}
	if *pprofAddr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		go http.ListenAndServe(*pprofAddr, mux)
	}
	serve(*listen, nil)
	if *listenTLS != "" {
		serve(*listenTLS, &tls.Config{MinVersion: tls.VersionTLS12})
	}
	fmt.Fprintf(os.Stderr, "goproxy: listening on %s %s\n", *listen, *listenTLS)
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, s := range servers {
		_ = s.Shutdown(sctx)
		_ = s.Close()
	}
}
