package proxy

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mxedge/mxedge/h1"
	"github.com/mxedge/mxedge/upstream"
)

// upgradeHeaderTimeout bounds the wait for the upstream's answer to a
// WebSocket upgrade when timeouts.upstream_response_header sets none.
const upgradeHeaderTimeout = 30 * time.Second

// closeGrace is how long a pump at shutdown waits for the frame it is in the
// middle of to end, so that its close frame lands between frames.
const closeGrace = 2 * time.Second

// wantsWebSocket reports an HTTP/1.1 request to switch to WebSocket
// (Connection: upgrade, Upgrade: websocket, GET).
func wantsWebSocket(r *http.Request) bool {
	if r.ProtoMajor != 1 || r.ProtoMinor != 1 || r.Method != http.MethodGet || !h1.EqualFold(headerValue(r.Header, "Upgrade"), "websocket") {
		return false
	}
	for tok := range h1.ListTokens(r.Header["Connection"]) {
		if h1.EqualFold(tok, "upgrade") {
			return true
		}
	}
	return false
}

// tunnel carries a WebSocket: it asks the member to switch protocols, and on
// its 101 takes the client's connection over and copies bytes both ways until
// either side ends, neither sends for timeouts.websocket_idle, or shutdown
// closes it (Server.CloseTunnels). Any other answer is passed on as usual.
func (f *forwarder) tunnel(w *responseWriter, r *http.Request, rq *request, pool *upstream.Pool, m *upstream.Member, req *h1.Request) outcome {
	out := outcome{forwarded: true}
	req.Upgrade = "websocket"
	if req.HeaderTimeout == 0 {
		req.HeaderTimeout = upgradeHeaderTimeout
	}
	res, err := m.Conns().RoundTrip(r.Context(), req)
	out.upstream = time.Since(rq.start)
	if err != nil {
		pool.Release(m, err)
		return upstreamFailed(w, r, rq, err, out)
	}
	defer res.Close()
	if res.Status != http.StatusSwitchingProtocols {
		res.Header(w.Header())
		w.WriteHeader(res.Status)
		err = res.WriteBody(w)
		var we *h1.WriteError
		if errors.As(err, &we) {
			pool.Release(m, nil)
			out.fail = failClient
		} else {
			pool.Release(m, err)
			out.fail = h1.Kind(err)
		}
		if err != nil {
			out.err, out.abort = err, true
		}
		return out
	}
	defer pool.Release(m, nil)
	hdr := http.Header{}
	res.Header(hdr)
	up, rest := res.Upgraded() // closed by res.Close
	client, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		out.err, out.fail = err, failClient
		writeError(w, http.StatusBadGateway, errUnknown, "Cannot switch protocols here")
		return out
	}
	defer client.Close()
	w.status, w.wroteHeader = http.StatusSwitchingProtocols, true
	head := appendSwitchHead(nil, hdr, rq.id)
	client.SetWriteDeadline(time.Now().Add(f.idle()))
	if _, err := client.Write(append(head, rest...)); err != nil {
		out.err, out.fail = err, failClient
		return out
	}
	// Bytes the client sent after its request head, already buffered.
	if n := brw.Reader.Buffered(); n > 0 {
		early, _ := brw.Reader.Peek(n)
		up.SetWriteDeadline(time.Now().Add(f.idle()))
		if _, err := up.Write(early); err != nil {
			out.err, out.fail = err, "reset"
			return out
		}
	}
	t := &tunnelConn{client: client, up: up, idle: f.idle()}
	t.last.Store(time.Now().UnixNano())
	set := rq.snap.tunnels
	set.add(t)
	defer set.remove(t)
	opened := time.Now()
	set.obs.TunnelOpened()
	defer func() { set.obs.TunnelClosed(time.Since(opened)) }()
	var wg sync.WaitGroup
	wg.Add(1)
	var in int64
	go func() {
		defer wg.Done()
		in = t.pump(client, up, true)
	}()
	w.written += t.pump(up, client, false)
	wg.Wait()
	rq.tunnelIn = in
	return out
}

func (f *forwarder) idle() time.Duration {
	if f.wsIdle > 0 {
		return f.wsIdle
	}
	return 365 * 24 * time.Hour
}

// appendSwitchHead appends the 101 head sent to the client: the upstream's
// fields (hop-by-hop ones already removed) with Upgrade and Connection, and
// mxedge's request id.
func appendSwitchHead(b []byte, h http.Header, id string) []byte {
	b = append(b, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"...)
	for k, vs := range h {
		if k == "X-Request-Id" {
			continue
		}
		for _, v := range vs {
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	b = append(b, "X-Request-Id: "...)
	b = append(b, id...)
	return append(b, "\r\n\r\n"...)
}

// tunnelConn is one open tunnel: two pumps, one per direction.
type tunnelConn struct {
	client, up net.Conn
	idle       time.Duration
	last       atomic.Int64 // unix nanoseconds of the last byte either way
	stopping   atomic.Bool
}

// pump copies src to dst until src ends or fails, the tunnel is idle in
// both directions for t.idle, or shutdown stops it. At shutdown it sends a
// close frame (1001, going away) to dst when it stops between frames; the
// caller closes the connections once both pumps are done. Otherwise it
// closes both connections so that the other pump ends too. toUpstream says
// dst is the upstream (whose frames from a client must be masked). It returns
// the bytes copied.
func (t *tunnelConn) pump(src, dst net.Conn, toUpstream bool) int64 {
	defer func() {
		if !t.stopping.Load() {
			t.client.Close()
			t.up.Close()
		}
	}()
	var frames wsFrames
	buf := make([]byte, 16<<10)
	var total int64
	var graceUntil time.Time
	for {
		src.SetReadDeadline(time.Now().Add(t.idle))
		if t.stopping.Load() {
			if frames.boundary() {
				sendClose(dst, toUpstream)
				return total
			}
			if graceUntil.IsZero() {
				graceUntil = time.Now().Add(closeGrace)
			}
			if time.Now().After(graceUntil) {
				return total // stuck mid-frame: drop it rather than cut a frame
			}
			src.SetReadDeadline(graceUntil)
		}
		n, err := src.Read(buf)
		if n > 0 && t.stopping.Load() && frames.boundary() {
			// Read after the stop began, at a frame boundary: not passed on
			// (the peer's answer to the close frame sent to it, or bytes the
			// closing tunnel would drop anyway); the close frame goes first.
			// A read deadline does not guarantee this: Go may report a read
			// ready that raced with the deadline.
			sendClose(dst, toUpstream)
			return total
		}
		if n > 0 {
			t.last.Store(time.Now().UnixNano())
			frames.feed(buf[:n])
			dst.SetWriteDeadline(time.Now().Add(t.idle))
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return total
			}
			total += int64(n)
		}
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if t.stopping.Load() {
				continue
			}
			if time.Since(time.Unix(0, t.last.Load())) < t.idle {
				continue // the other direction is alive
			}
		}
		return total
	}
}

// sendClose writes the close frame (1001) to dst, bounded by a second.
func sendClose(dst net.Conn, toUpstream bool) {
	dst.SetWriteDeadline(time.Now().Add(time.Second))
	dst.Write(closeFrame(toUpstream))
}

// shutdown asks both pumps to close the tunnel cleanly.
func (t *tunnelConn) shutdown() {
	if t.stopping.CompareAndSwap(false, true) {
		now := time.Now()
		t.client.SetReadDeadline(now)
		t.up.SetReadDeadline(now)
	}
}

// closeFrame is a WebSocket close frame with status 1001 (going away),
// masked when it goes to the upstream (client-to-server frames are).
func closeFrame(masked bool) []byte {
	if !masked {
		return []byte{0x88, 0x02, 0x03, 0xe9}
	}
	var m [4]byte
	rand.Read(m[:])
	return []byte{0x88, 0x82, m[0], m[1], m[2], m[3], 0x03 ^ m[0], 0xe9 ^ m[1]}
}

// wsFrames follows the frame boundaries of a WebSocket byte stream (RFC
// 6455 §5.2) without looking at payloads, so that a close frame can be put
// between two frames.
type wsFrames struct {
	hdr    [14]byte
	hn     int    // header bytes seen of the current frame
	need   int    // header length, once known (0: not yet)
	remain uint64 // payload bytes still to come
}

func (f *wsFrames) boundary() bool { return f.hn == 0 && f.remain == 0 }

func (f *wsFrames) feed(b []byte) {
	for len(b) > 0 {
		if f.hn == 0 && f.remain > 0 {
			k := uint64(len(b))
			if k > f.remain {
				k = f.remain
			}
			f.remain -= k
			b = b[k:]
			continue
		}
		f.hdr[f.hn] = b[0]
		f.hn++
		b = b[1:]
		if f.hn == 2 {
			f.need = 2
			switch f.hdr[1] & 0x7f {
			case 126:
				f.need += 2
			case 127:
				f.need += 8
			}
			if f.hdr[1]&0x80 != 0 {
				f.need += 4
			}
		}
		if f.hn >= 2 && f.hn == f.need {
			switch l := f.hdr[1] & 0x7f; l {
			case 126:
				f.remain = uint64(f.hdr[2])<<8 | uint64(f.hdr[3])
			case 127:
				for _, c := range f.hdr[2:10] {
					f.remain = f.remain<<8 | uint64(c)
				}
			default:
				f.remain = uint64(l)
			}
			f.hn, f.need = 0, 0
		}
	}
}

// tunnelSet is the open tunnels of a Server, for shutdown.
type tunnelSet struct {
	obs  Observer
	mu   sync.Mutex
	open map[*tunnelConn]struct{}
	done *sync.Cond
}

func newTunnelSet(obs Observer) *tunnelSet {
	s := &tunnelSet{obs: obs, open: map[*tunnelConn]struct{}{}}
	s.done = sync.NewCond(&s.mu)
	return s
}

func (s *tunnelSet) add(t *tunnelConn) {
	s.mu.Lock()
	s.open[t] = struct{}{}
	s.mu.Unlock()
}

func (s *tunnelSet) remove(t *tunnelConn) {
	s.mu.Lock()
	delete(s.open, t)
	s.done.Broadcast()
	s.mu.Unlock()
}

// Open returns the number of open tunnels.
func (s *tunnelSet) Open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.open)
}

// closeAll lets the open tunnels run until ctx is done, then closes each
// cleanly (a close frame both ways, between frames) and waits for them.
func (s *tunnelSet) closeAll(ctx context.Context) {
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		for t := range s.open {
			t.shutdown()
		}
		s.done.Broadcast()
		s.mu.Unlock()
	})
	defer stop()
	s.mu.Lock()
	for len(s.open) > 0 {
		s.done.Wait()
	}
	s.mu.Unlock()
}

// CloseTunnels is the shutdown of WebSocket tunnels, which net/http's
// Shutdown does not wait for (they are hijacked connections): they keep
// running until ctx is done (timeouts.shutdown), then each gets a close frame
// (1001, going away) both ways and is closed. It returns when none is left.
func (s *Server) CloseTunnels(ctx context.Context) { s.tunnels.closeAll(ctx) }
