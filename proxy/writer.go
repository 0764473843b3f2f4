package proxy

import (
	"bufio"
	"net"
	"net/http"
	"time"
)

// responseWriter wraps the server's ResponseWriter for one request: it records
// status and bytes, adds mxedge's own headers (CORS exactly once, request id,
// HSTS) at the moment the final header is written, whoever writes it (the
// forwarder, a local answer, an error), and pushes the write deadline forward
// on every write so that a client that stops reading is dropped after
// timeouts.write_idle while a long-poll that writes late is never cut.
// It keeps Flush working and implements Unwrap for http.ResponseController.
type responseWriter struct {
	http.ResponseWriter
	rq          *request
	status      int
	written     int64
	wroteHeader bool
	http1       bool // HTTP/1.x: Connection may be set
	deadline    interface{ SetWriteDeadline(time.Time) error }
	flusher     http.Flusher
}

func (w *responseWriter) init(rw http.ResponseWriter, r *http.Request, rq *request) {
	w.ResponseWriter = rw
	w.rq = rq
	w.http1 = r.ProtoMajor == 1
	w.deadline, _ = rw.(interface{ SetWriteDeadline(time.Time) error })
	w.flusher, _ = rw.(http.Flusher)
}

// Unwrap returns the server's writer, for http.ResponseController.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *responseWriter) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	if code < 200 {
		// 1xx (100 Continue, 103 Early Hints from the upstream): not final.
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.wroteHeader = true
	w.status = code
	w.rq.finalizeHeader(w.ResponseWriter.Header(), code)
	w.pushDeadline()
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	w.pushDeadline()
	n, err := w.ResponseWriter.Write(p)
	w.written += int64(n)
	return n, err
}

// Flush sends buffered data to the client.
func (w *responseWriter) Flush() {
	w.FlushError()
}

// FlushError is Flush that reports failure (used by http.ResponseController).
func (w *responseWriter) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.flusher == nil {
		return http.ErrNotSupported
	}
	w.pushDeadline()
	w.flusher.Flush()
	return nil
}

// Hijack is refused: mxedge never switches protocols.
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return nil, nil, http.ErrNotSupported
}

func (w *responseWriter) pushDeadline() {
	if d := w.rq.snap.writeIdle; d > 0 && w.deadline != nil {
		w.deadline.SetWriteDeadline(time.Now().Add(d))
	}
}

// clearDeadline removes the write deadline once the response is complete, so
// that the idle keep-alive connection is governed by timeouts.idle alone.
func (w *responseWriter) clearDeadline() {
	if w.deadline != nil && w.rq.snap.writeIdle > 0 {
		w.deadline.SetWriteDeadline(time.Time{})
	}
}
