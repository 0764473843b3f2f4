package h1

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
)

// ProtocolError is an upstream's violation of HTTP/1.1: the exchange fails
// (a 502 for the proxy) and the connection is never reused.
type ProtocolError string

func (e ProtocolError) Error() string { return "upstream: " + string(e) }

// The protocol violations RoundTrip reports.
const (
	ErrHeadTooLarge   = ProtocolError("response head too large")
	ErrStatusLine     = ProtocolError("malformed status line")
	ErrHeaderLine     = ProtocolError("malformed header line")
	ErrObsFold        = ProtocolError("obsolete line folding in response head")
	ErrHeaderBytes    = ProtocolError("invalid byte in response header")
	ErrContentLength  = ProtocolError("invalid Content-Length")
	ErrMultipleCL     = ProtocolError("several differing Content-Length values")
	ErrTransferEnc    = ProtocolError("unsupported Transfer-Encoding")
	ErrCLAndTE        = ProtocolError("both Content-Length and Transfer-Encoding")
	ErrSwitch         = ProtocolError("upstream switched protocols unasked")
	ErrChunked        = ProtocolError("malformed chunked encoding")
	ErrChunkOverhead  = ProtocolError("chunked encoding with too much non-data")
	ErrTooManyInterim = ProtocolError("too many interim (1xx) responses")
)

// Errors about the request itself, not the upstream.
var (
	// ErrRequestField is a request field value with a control byte; nothing
	// was sent.
	ErrRequestField = errors.New("h1: invalid request field value")
	// ErrBodyTooLong is a body longer than its declared Content-Length; the
	// request was cut short so the upstream sees an aborted request.
	ErrBodyTooLong = errors.New("h1: request body longer than its Content-Length")
)

// BodyError wraps the error of reading the request body (the client's
// fault: it went away, stalled, or sent too much). The request was cut
// short, so the upstream saw an aborted request, never a complete one.
type BodyError struct{ Err error }

func (e *BodyError) Error() string { return "request body: " + e.Err.Error() }
func (e *BodyError) Unwrap() error { return e.Err }

// ConnectError is a failure to open a connection to the upstream (the dial
// or the TLS handshake). Nothing of the request was sent and nothing of its
// body read: the caller may send it to another server, whatever its method.
type ConnectError struct{ Err error }

func (e *ConnectError) Error() string { return e.Err.Error() }
func (e *ConnectError) Unwrap() error { return e.Err }

// Kind names the cause of a failed exchange, for logs and metrics: one of
// "refused", "reset", "timeout", "protocol", "client", "canceled", "other".
func Kind(err error) string {
	if err == nil {
		return "" // before the variables below, which escape: no allocation per good exchange
	}
	return kind(err)
}

func kind(err error) string {
	var ne net.Error
	var pe ProtocolError
	var be *BodyError
	switch {
	case errors.As(err, &be):
		return "client"
	case errors.As(err, &pe):
		return "protocol"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ENOENT):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "other"
}

// closedByPeer reports the errors of a connection the upstream closed or
// reset: what a reused idle connection shows when the upstream dropped it.
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
