// Command standins serves the two parts of a Synapse + MAS + Element Call deployment that cannot be
// installed on the e2e machine, each following its project's documented HTTP contract:
//
//	standins mas    -listen ADDR -public-base URL -homeserver URL
//	standins lk-jwt -listen ADDR -homeserver URL -livekit-url URL -key K -secret S
//
// mas stands in for the Matrix Authentication Service (MAS is Rust): OpenID discovery on its own
// host and the compat login API. lk-jwt stands in for element-hq/lk-jwt-service (no Go module path to
// install): it exchanges a Matrix OpenID token for a LiveKit access token. Both count the requests they
// received (GET /_standin/stats, never counted itself) so a test can prove where a request went.
// Neither is a product: each simplifies what a test of the edge in front of it does not need (see the
// README's "Stand-ins" section).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: standins mas|lk-jwt [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, os.Args[1], os.Args[2:]); err != nil {
		log.Printf("standins %s: %v", os.Args[1], err)
		os.Exit(1)
	}
}

func run(ctx context.Context, kind string, args []string) error {
	fs := flag.NewFlagSet(kind, flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	homeserver := fs.String("homeserver", "", "homeserver base URL (mas: the homeserver itself; lk-jwt: its public URL, through the edge)")
	publicBase := fs.String("public-base", "", "mas: MAS's http.public_base, like https://auth.example.org/")
	livekitURL := fs.String("livekit-url", "", "lk-jwt: LIVEKIT_URL, the SFU's public WebSocket URL")
	key := fs.String("key", "", "lk-jwt: LIVEKIT_KEY")
	secret := fs.String("secret", "", "lk-jwt: LIVEKIT_SECRET")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *homeserver == "" {
		return errors.New("-homeserver is required")
	}
	var h http.Handler
	switch kind {
	case "mas":
		m, err := newMAS(*publicBase, *homeserver)
		if err != nil {
			return err
		}
		h = m
	case "lk-jwt":
		if *livekitURL == "" || *key == "" || *secret == "" {
			return errors.New("-livekit-url, -key and -secret are required")
		}
		h = newLKJWT(*homeserver, *livekitURL, *key, *secret)
	default:
		return fmt.Errorf("unknown stand-in %q (mas or lk-jwt)", kind)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: logRequests(kind, h), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	log.Printf("standins %s listening on %s", kind, ln.Addr())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// logRequests logs one line per request (never the query: it may hold a token).
func logRequests(kind string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		log.Printf("%s %s %s host=%s request_id=%q status=%d", kind, r.Method, r.URL.Path, r.Host, r.Header.Get("X-Request-Id"), sw.status)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
