package h1

import (
	"io"
	"strconv"
)

// sender streams a request upstream: the head and the first body bytes in
// one write, then the body as it is read, with Content-Length or chunked.
// A body whose declared length fits in the buffer is read whole before the
// first write, so that the request can be sent again when a reused
// connection turns out dead. A body read error stops it short: the
// connection is then closed without the rest of the body or the last chunk,
// so the upstream sees an aborted request, never a complete one.
type sender struct {
	wb      []byte // the 32 KiB buffer, full length
	body    io.Reader
	chunked bool
	remain  int64 // bytes of a Content-Length body still to send
	eof     bool  // the body has been read to its end
	// whole is the entire request (head and body) when it went out in one
	// write: it can be sent again on another connection.
	whole []byte
}

// roomForBody is the least free space worth a body read behind the head.
const roomForBody = 512

// send writes pending (a prefix of s.wb, or a head too large for it) and the
// rest of the body to c. wrote reports whether any byte reached the
// connection; when none did, the exchange may be tried again with rest.
func (s *sender) send(c *conn, pending []byte) (rest []byte, wrote bool, err error) {
	first := true
	for {
		if s.body != nil && !s.eof && len(pending)+roomForBody <= len(s.wb) {
			var err error
			// The first write waits for a body that fits whole; later ones
			// go out with what one read gives.
			whole := first && !s.chunked && s.remain <= int64(len(s.wb)-len(pending))
			for {
				if pending, err = s.read(pending); err != nil || s.eof || !whole {
					break
				}
			}
			if err != nil {
				return pending, wrote, err
			}
		}
		if first && (s.body == nil || s.eof) {
			s.whole = pending
		}
		first = false
		if len(pending) > 0 {
			n, werr := c.nc.Write(pending)
			if n > 0 {
				wrote = true
			}
			if werr != nil {
				return pending[n:], wrote, werr
			}
			pending = s.wb[:0]
		}
		if s.body == nil || s.eof {
			return nil, wrote, nil
		}
	}
}

// read appends one read of body bytes (framed as a chunk when chunked) to
// pending, which ends within s.wb.
func (s *sender) read(pending []byte) ([]byte, error) {
	off := len(pending)
	pre := 0
	if s.chunked {
		pre = 6 // "xxxx\r\n": a chunk is under 64 KiB
	}
	space := s.wb[off+pre : len(s.wb)-7] // room for "\r\n0\r\n\r\n"
	if !s.chunked && int64(len(space)) > s.remain+1 {
		space = space[:s.remain+1] // one more byte shows a body longer than declared
	}
	n, rerr := s.body.Read(space)
	if n > 0 {
		if s.chunked {
			pending = s.appendChunk(pending, off, pre, n)
		} else {
			if int64(n) > s.remain {
				return pending, ErrBodyTooLong
			}
			s.remain -= int64(n)
			pending = s.wb[:off+n]
		}
	}
	switch {
	case rerr == io.EOF:
		s.eof = true
		if s.chunked {
			pending = append(pending, "0\r\n\r\n"...)
		} else if s.remain > 0 {
			return pending, &BodyError{io.ErrUnexpectedEOF}
		}
	case rerr != nil:
		return pending, &BodyError{rerr}
	case !s.chunked && s.remain == 0 && n > 0:
		// The declared length is complete; a body that says so with its
		// next read is not waited for.
		s.eof = true
	}
	return pending, nil
}

// appendChunk frames the n body bytes read at wb[off+pre:] as one chunk.
func (s *sender) appendChunk(pending []byte, off, pre, n int) []byte {
	var hex [8]byte
	h := strconv.AppendInt(hex[:0], int64(n), 16)
	start := off + len(h) + 2
	if start != off+pre {
		copy(s.wb[start:], s.wb[off+pre:off+pre+n])
	}
	copy(s.wb[off:], h)
	s.wb[off+len(h)], s.wb[off+len(h)+1] = '\r', '\n'
	end := start + n
	s.wb[end], s.wb[end+1] = '\r', '\n'
	return s.wb[:end+2]
}
