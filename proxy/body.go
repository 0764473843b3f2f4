package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"
)

// Why a request body stopped. The forwarder's error handler reads it to tell a
// client's fault (4xx) from the upstream's (5xx).
const (
	bodyOK        int32 = iota
	bodyTooLarge        // more than the route's limit: 413
	bodyStalled         // no byte for timeouts.read_body_idle: 408
	bodyMalformed       // broken chunked framing (bare LF, extension floods...): 400, connection closed
	bodyAborted         // the client went away mid-body
)

var (
	errBodyTooLarge = errors.New("request body larger than the configured limit")
	errBodyStalled  = errors.New("request body stalled")
)

// body wraps a request body on its way upstream. It enforces the size limit
// for bodies without Content-Length (chunked), pushes the read deadline
// forward on every read so that an upload stops only when it stops moving,
// and remembers why it failed. A failed read makes the forwarder abort the
// upstream request, so a truncated body never reaches the homeserver as a
// complete one.
type body struct {
	rc       io.ReadCloser
	limit    int64 // bytes allowed; the read of byte limit+1 fails
	declared int64 // Content-Length, -1 when chunked
	n        int64
	idle     time.Duration
	deadline interface{ SetReadDeadline(time.Time) error }
	state    atomic.Int32
	eof      atomic.Bool
}

func (b *body) Read(p []byte) (int, error) {
	if s := b.state.Load(); s != bodyOK {
		return 0, b.err(s)
	}
	if b.idle > 0 && b.deadline != nil {
		b.deadline.SetReadDeadline(time.Now().Add(b.idle))
	}
	if room := b.limit - b.n + 1; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := b.rc.Read(p)
	b.n += int64(n)
	if b.n > b.limit {
		b.state.Store(bodyTooLarge)
		return 0, errBodyTooLarge
	}
	switch {
	case err == nil:
		if b.n == b.declared {
			// The whole declared body is in: the reader may not be asked
			// again (net/http says io.EOF with the last bytes anyway).
			b.finished()
		}
	case err == io.EOF:
		b.finished()
	case errors.Is(err, os.ErrDeadlineExceeded):
		b.state.Store(bodyStalled)
		err = errBodyStalled
	case clientGone(err):
		b.state.Store(bodyAborted)
	default:
		// net/http's chunked reader refused the framing: bare LF, a bad
		// size, too much extension data.
		b.state.Store(bodyMalformed)
	}
	return n, err
}

// clientGone reports the errors of a connection that ended mid-body, as
// opposed to a body whose framing is broken.
func clientGone(err error) bool {
	var ne net.Error
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || errors.As(err, &ne)
}

func (b *body) err(s int32) error {
	switch s {
	case bodyTooLarge:
		return errBodyTooLarge
	case bodyStalled:
		return errBodyStalled
	}
	return io.ErrUnexpectedEOF
}

// finished marks the body read to its end and clears the read deadline:
// once the body is read, the server's background read watches the
// connection during a long answer, and a stale deadline there would cancel
// the request.
func (b *body) finished() {
	b.eof.Store(true)
	if b.idle > 0 && b.deadline != nil {
		b.deadline.SetReadDeadline(time.Time{})
	}
}

func (b *body) Close() error { return b.rc.Close() }
