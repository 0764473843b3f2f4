package proxy

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// randReader yields n deterministic pseudo-random bytes without holding them.
type randReader struct {
	r *rand.ChaCha8
	n int64
}

func newRandReader(seed byte, n int64) *randReader {
	var s [32]byte
	s[0] = seed
	return &randReader{r: rand.NewChaCha8(s), n: n}
}

func (r *randReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.n {
		p = p[:r.n]
	}
	r.r.Read(p)
	r.n -= int64(len(p))
	return len(p), nil
}

func sha(r io.Reader) (string, int64) {
	h := sha256.New()
	n, _ := io.Copy(h, r)
	return hex.EncodeToString(h.Sum(nil)), n
}

const hundredMB = 100 << 20

func TestLargeUploadStreamedByteExact(t *testing.T) {
	e := newEdge(t, "limits: {max_body_size: 200M}\n", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"content_uri":"mxc://example.org/abc"}`)
	})
	want, _ := sha(newRandReader(1, hundredMB))
	for _, chunked := range []bool{false, true} {
		var body io.Reader = newRandReader(1, hundredMB)
		req, _ := http.NewRequest("POST", e.URL+"/_matrix/media/v3/upload?filename=a.bin", body)
		if !chunked {
			req.ContentLength = hundredMB
		}
		req.Header.Set("Content-Type", "application/octet-stream")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("chunked=%v: status %d", chunked, res.StatusCode)
		}
		got := e.hs.last(t)
		if got.BodySHA != want || got.BodyLen != hundredMB {
			t.Errorf("chunked=%v: upstream got %d bytes sha %s, want %d sha %s", chunked, got.BodyLen, got.BodySHA, hundredMB, want)
		}
	}
}

func TestLargeDownloadStreamedByteExact(t *testing.T) {
	e := newEdge(t, "", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		if r.URL.Query().Get("len") == "1" {
			w.Header().Set("Content-Length", strconv.Itoa(hundredMB))
		}
		io.Copy(w, newRandReader(2, hundredMB))
	})
	want, _ := sha(newRandReader(2, hundredMB))
	for _, q := range []string{"len=1", "len=0"} {
		res, err := http.Get(e.URL + "/_matrix/client/v1/media/download/example.org/abc?" + q)
		if err != nil {
			t.Fatal(err)
		}
		got, n := sha(res.Body)
		res.Body.Close()
		if got != want || n != hundredMB {
			t.Errorf("%s: client got %d bytes sha %s, want %d sha %s", q, n, got, hundredMB, want)
		}
	}
}

func TestBodyLimits(t *testing.T) {
	e := newEdge(t, "limits: {max_json_body_size: 1K, max_body_size: 4K}\n", nil)
	arrived, recorded := e.hs.watch()
	tests := []struct {
		name, path string
		size       int
		chunked    bool
		expect     bool
		wantStatus int
	}{
		{"json under limit", "/_matrix/client/v3/rooms/%21a%3Ab/send/m.room.message/t1", 1024, false, false, 200},
		{"json over limit", "/_matrix/client/v3/rooms/%21a%3Ab/send/m.room.message/t2", 1025, false, false, 413},
		{"json over limit, chunked", "/_matrix/client/v3/keys/upload", 5000, true, false, 413},
		{"media under body limit", "/_matrix/media/v3/upload", 4096, false, false, 200},
		{"media over body limit", "/_matrix/media/v3/upload", 4097, false, false, 413},
		{"media over body limit, chunked", "/_matrix/media/v3/upload", 9000, true, false, 413},
		{"federation uses body limit", "/_matrix/federation/v1/send/t3", 3000, false, false, 200},
		{"expect 100-continue over limit", "/_matrix/media/v3/upload", 1 << 20, false, true, 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(arrived)+len(recorded) != 0 {
				t.Fatal("the homeserver got a request no earlier case expected")
			}
			before := len(e.hs.requests())
			c, err := net.Dial("tcp", e.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			method := "PUT"
			if strings.Contains(tt.path, "upload") {
				method = "POST"
			}
			head := method + " " + tt.path + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
			if tt.chunked {
				head += "Transfer-Encoding: chunked\r\n"
			} else {
				head += "Content-Length: " + strconv.Itoa(tt.size) + "\r\n"
			}
			if tt.expect {
				head += "Expect: 100-continue\r\n"
			}
			io.WriteString(c, head+"\r\n")
			br := bufio.NewReader(c)
			if tt.expect {
				// The answer must come without a 100 Continue and before any body byte.
				res, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				if res.StatusCode != tt.wantStatus {
					t.Fatalf("status %d, want %d", res.StatusCode, tt.wantStatus)
				}
				matrixErrorCode(t, res, "M_TOO_LARGE")
				if n := len(e.hs.requests()) - before; n != 0 {
					t.Errorf("upstream saw %d requests", n)
				}
				return
			}
			payload := strings.Repeat("a", tt.size)
			if tt.chunked {
				// The first chunk is under the limit and reaches the homeserver
				// before the rest is sent: the excess is found on the way, and
				// the request already forwarded must be cut.
				fmt.Fprintf(c, "%x\r\n%s\r\n", 1000, payload[:1000])
				waitSignal(t, arrived, "the first chunk forwarded")
			}
			go func() {
				if tt.chunked {
					for i := 1000; i < len(payload); i += 1000 {
						j := min(i+1000, len(payload))
						fmt.Fprintf(c, "%x\r\n%s\r\n", j-i, payload[i:j])
					}
					io.WriteString(c, "0\r\n\r\n")
				} else {
					io.WriteString(c, payload)
				}
			}()
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d", res.StatusCode, tt.wantStatus)
			}
			if tt.wantStatus == 413 {
				matrixErrorCode(t, res, "M_TOO_LARGE")
				wantCORSOnce(t, res.Header)
				if !tt.chunked {
					// Refused on its Content-Length, before anything is forwarded.
					if n := len(e.hs.requests()) - before; n != 0 {
						t.Errorf("upstream saw %d requests, want 0", n)
					}
					return
				}
			}
			if !tt.chunked {
				waitSignal(t, arrived, "the request forwarded")
			}
			waitSignal(t, recorded, "the request recorded")
			got := e.hs.requests()[before:]
			if len(got) != 1 {
				t.Fatalf("upstream saw %d requests, want 1", len(got))
			}
			if tt.wantStatus == 413 && got[0].BodyErr == nil {
				t.Errorf("upstream received a complete body of %d bytes for an oversized request", got[0].BodyLen)
			}
		})
	}
}

func matrixErrorCode(t *testing.T, res *http.Response, want string) {
	t.Helper()
	if got, _ := matrixError(t, res); got != want {
		t.Errorf("errcode %q, want %q", got, want)
	}
}

func TestUpstreamDown502(t *testing.T) {
	e := newEdge(t, "", nil)
	e.hs.Close()
	res := e.raw(t, get("/_matrix/client/versions"))
	if res.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", res.StatusCode)
	}
	matrixErrorCode(t, res, "M_UNKNOWN")
	wantCORSOnce(t, res.Header)
}

func TestUpstreamSlow504ButLongPollNot(t *testing.T) {
	release := make(chan struct{})
	e := newEdge(t, "timeouts: {upstream_response_header: 200ms}\n", func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/sync") || strings.Contains(r.URL.Path, "/media/") {
			time.Sleep(600 * time.Millisecond) // longer than the header timeout
		} else {
			<-release
		}
		io.WriteString(w, "{}")
	})
	defer close(release)
	res := e.raw(t, get("/_matrix/client/v3/profile/%40a%3Ab"))
	if res.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("status %d, want 504", res.StatusCode)
	}
	matrixErrorCode(t, res, "M_UNKNOWN")
	for _, p := range []string{"/_matrix/client/v3/sync?timeout=30000", "/_matrix/client/v1/media/download/a/b"} {
		if res := e.raw(t, get(p)); res.StatusCode != 200 {
			t.Errorf("%s: status %d, want 200 (no header timeout on long-polls and downloads)", p, res.StatusCode)
		}
	}
}

func TestUpstreamResetMidBodyAbortsClient(t *testing.T) {
	e := newEdge(t, "", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000000")
		w.WriteHeader(200)
		w.Write(make([]byte, 1000))
		w.(http.Flusher).Flush()
		c, _, _ := http.NewResponseController(w).Hijack()
		c.Close()
	})
	res, err := http.Get(e.URL + "/_matrix/client/v1/media/download/a/b")
	if err != nil {
		return // aborted before the head was flushed: an error, as it must be
	}
	n, err := io.Copy(io.Discard, res.Body)
	if err == nil {
		t.Errorf("client read %d bytes and a clean end: a truncated response must be an error", n)
	}
}

func TestLongPollOutlivesServerTimeouts(t *testing.T) {
	// Every timeout mxedge has is shorter than the long-poll.
	hold := 1500 * time.Millisecond
	e := newEdge(t, "timeouts: {read_header: 300ms, idle: 300ms, upstream_response_header: 300ms, read_body_idle: 300ms, write_idle: 300ms}\n",
		func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(hold)
			io.WriteString(w, `{"next_batch":"s2"}`)
		})
	start := time.Now()
	res := e.raw(t, get("/_matrix/client/v3/sync?since=s1&timeout=30000"))
	if res.StatusCode != 200 {
		t.Fatalf("status %d after %v, want 200", res.StatusCode, time.Since(start))
	}
	b, _ := io.ReadAll(res.Body)
	if string(b) != `{"next_batch":"s2"}` {
		t.Errorf("body %q", b)
	}
	// A POST whose body was read before a long answer keeps its connection:
	// the read deadline set for the body must not cancel the request later.
	body := `{"device_keys":{}}`
	res = e.raw(t, fmt.Sprintf("POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body))
	if res.StatusCode != 200 {
		t.Errorf("POST with slow answer: status %d, want 200", res.StatusCode)
	}
}

func TestStalledBodyIs408(t *testing.T) {
	e := newEdge(t, "timeouts: {read_body_idle: 200ms}\n", nil)
	_, recorded := e.hs.watch()
	c, err := net.Dial("tcp", e.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// More than the 32 KiB the forwarder holds before its first write, so
	// the request is on its way upstream when the client stalls (a small
	// body that stalls never leaves mxedge: TestStalledSmallBodyNeverForwarded).
	io.WriteString(c, "POST /_matrix/media/v3/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n"+strings.Repeat("a", 40<<10))
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("status %d, want 408", res.StatusCode)
	}
	matrixErrorCode(t, res, "M_UNKNOWN")
	waitSignal(t, recorded, "the stalled upload recorded")
	got := e.hs.requests()
	if len(got) != 1 {
		t.Fatalf("upstream saw %d requests, want 1", len(got))
	}
	if got[0].BodyErr == nil {
		t.Errorf("upstream saw a complete body (%d bytes) for a stalled upload", got[0].BodyLen)
	}
}

// A body that fits the forwarder's first write is read whole before anything
// is sent: when it stalls, the homeserver sees no request at all.
func TestStalledSmallBodyNeverForwarded(t *testing.T) {
	e := newEdge(t, "timeouts: {read_body_idle: 200ms}\n", nil)
	arrived, _ := e.hs.watch()
	c, err := net.Dial("tcp", e.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /_matrix/media/v3/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nonly-a-little")
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("status %d, want 408", res.StatusCode)
	}
	// A head sent upstream with the first bytes would have reached the
	// homeserver's handler during the 200 ms the body stalled.
	select {
	case <-arrived:
		t.Error("the homeserver saw the request; want nothing sent for a small body that never completed")
	default:
	}
}

func TestClientGoneCancelsUpstream(t *testing.T) {
	cancelled := make(chan struct{})
	started := make(chan struct{})
	e := newEdge(t, "", func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
		close(cancelled)
	})
	c, err := net.Dial("tcp", e.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, get("/_matrix/client/v3/sync?timeout=30000"))
	<-started
	c.Close()
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("upstream request not cancelled after the client left")
	}
}

// waitRequests polls until the homeserver has recorded n requests.
func (hs *homeserver) waitRequests(t *testing.T, n int) []recorded {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := hs.requests()
		if len(r) >= n {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("homeserver recorded %d requests, want %d", len(r), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestTruncatedUploadNeverComplete(t *testing.T) {
	e := newEdge(t, "", nil)
	for i, te := range []string{"Content-Length: 100000\r\n\r\n", "Transfer-Encoding: chunked\r\n\r\n1000\r\n"} {
		c, err := net.Dial("tcp", e.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "POST /_matrix/media/v3/upload HTTP/1.1\r\nHost: x\r\n"+te+strings.Repeat("x", 4096))
		c.Close()
		// The homeserver records a request once its body read has ended.
		r := e.hs.waitRequests(t, i+1)[i]
		if r.BodyErr == nil {
			t.Errorf("%q: upstream body ended cleanly after %d bytes; want an aborted request", te, r.BodyLen)
		}
	}
}
