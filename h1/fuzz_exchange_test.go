package h1

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mxedge/mxedge/testkit"
)

// The invariant of a pooled HTTP/1.1 client: each client receives its own
// exchange's answer or an error, never another's. FuzzExchangeOwnAnswer
// feeds arbitrary upstream byte streams to concurrent exchanges over one
// pool: the upstream answers each request with one of three scripts, in which
// "@@" stands for a tag naming that request, written in one write (then the
// connection is kept, or closed when the script starts with '!'). Three
// clients send three requests each (GET, HEAD and PUT with a body); any tag
// a client finds in its answer (fields or body) must be its own.
func FuzzExchangeOwnAnswer(f *testing.F) {
	ok := "HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n@@"
	for _, s := range [][3]string{
		{ok, ok, ok},
		{"HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n@@", "HTTP/1.1 204 No Content\r\n\r\n@@", "HTTP/1.1 304 Not Modified\r\nX-T: @@\r\n\r\n@@"},
		{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n@@", ok + ok, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\ne\r\n@@\r\n0\r\n\r\n" + ok},
		{"HTTP/1.1 100 Continue\r\n\r\n" + ok, "!HTTP/1.1 200 OK\r\n\r\n@@", "HTTP/1.0 200 OK\r\nContent-Length: 14\r\n\r\n@@@@"},
		{"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n@@", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n@@", ok},
	} {
		f.Add([]byte(s[0]), []byte(s[1]), []byte(s[2]))
	}
	f.Fuzz(func(t *testing.T, s0, s1, s2 []byte) {
		checkOwnAnswer(t, [3][]byte{s0, s1, s2})
	})
}

// checkOwnAnswer runs one round of FuzzExchangeOwnAnswer.
func checkOwnAnswer(t *testing.T, scripts [3][]byte) {
	var nb [4]byte
	rand.Read(nb[:])
	nonce := "<" + hex.EncodeToString(nb[:]) // a tag is nonce + 4 digits + ">": 14 bytes
	u := testkit.NewRawUpstream(t, nil, func(n int, req *http.Request, c net.Conn) bool {
		tag := nonce + strings.TrimPrefix(req.URL.Path, "/t/") + ">"
		s := scripts[(n-1)%3]
		closeAfter := len(s) > 0 && s[0] == '!'
		if closeAfter {
			s = s[1:]
		}
		_, err := c.Write(bytes.ReplaceAll(s, []byte("@@"), []byte(tag)))
		return err != nil || closeAfter
	})
	p := NewPool(PoolOptions{Network: "tcp", Addr: u.Addr()})
	defer p.Close()
	var cw sync.WaitGroup
	for g := range 3 {
		cw.Add(1)
		go func() {
			defer cw.Done()
			for i := range 3 {
				id := fmt.Sprintf("%d%03d", g, i)
				own := nonce + id + ">"
				req := &Request{Path: "/t/" + id, Host: "h", Header: http.Header{}, HeaderTimeout: 5 * time.Millisecond}
				switch i {
				case 0:
					req.Method = "GET"
				case 1:
					req.Method = "HEAD"
				default:
					req.Method, req.Body, req.ContentLength = "PUT", strings.NewReader(`{"n":1}`), 7
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
				r := exchange(ctx, p, req)
				cancel()
				var all strings.Builder
				for _, vs := range r.header {
					for _, v := range vs {
						all.WriteString(v)
					}
				}
				all.WriteString(r.body)
				for rest := all.String(); ; {
					k := strings.Index(rest, nonce)
					if k < 0 {
						break
					}
					// A tag cut short (a body shorter than its tag) is
					// judged on the bytes that are there.
					if cut := rest[k:min(len(rest), k+len(own))]; !strings.HasPrefix(own, cut) {
						t.Errorf("client %s (%s) got another exchange's answer: status %d, header %v, body %q", id, req.Method, r.status, r.header, r.body)
						return
					}
					rest = rest[k+len(nonce):]
				}
			}
		}()
	}
	cw.Wait()
}
