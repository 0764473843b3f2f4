package h1

import (
	"bytes"
	"io"
)

// Chunked body states.
const (
	chunkSize    uint8 = iota // expecting a chunk-size line
	chunkDataEnd              // expecting the CRLF after chunk data
	chunkTrailer              // in the trailer section
	chunkDone                 // the last chunk and the trailer section are read
)

// Limits of chunk framing, as net/http's chunked reader has them.
const (
	maxChunkLine = 4096 // a chunk-size line, extensions included
	// A sender may spend 16 bytes of framing per chunk plus twice the data
	// in it; beyond that, over 16 KiB of excess is an attack (floods of
	// extensions or of one-byte chunks).
	chunkExcessFree  = 16
	maxChunkExcess   = 16 << 10
	maxChunkHexDigit = 15 // chunk sizes below 2^60
	// maxTrailer caps the trailer section (its fields and the empty line
	// ending it): net/http finds its end within its 4 KiB read buffer or
	// refuses the body.
	maxTrailer = 4 << 10
)

// chunked decodes a chunked body from a connection's read buffer. Stricter
// than or equal to net/http's reader: chunk lines end in CRLF with no other
// CR (net/http refuses bare LF there too), the size is hex digits only,
// extensions are skipped, and the excess framing is bounded the same way.
// Trailer lines end in CRLF (net/http reads bare LF there only when a CRLF
// CRLF follows within its buffer); trailer fields are checked like header
// fields and dropped.
type chunked struct {
	left    int64 // data bytes left in the current chunk
	state   uint8
	excess  int64
	trailer int // bytes of trailer section seen
}

// framing consumes chunk framing (the CRLF after data, size lines, the
// trailer section) until a chunk with data starts or the body ends. With
// block false it stops, without error, when the next line is not buffered
// yet.
func (k *chunked) framing(c *conn, block bool) error {
	for k.left == 0 && k.state != chunkDone {
		limit := maxChunkLine
		if k.state == chunkTrailer {
			limit = maxTrailer
		}
		line, ok, err := c.bufLine(block, limit)
		if err != nil || !ok {
			return err
		}
		switch k.state {
		case chunkDataEnd:
			if len(line) != 2 || line[0] != '\r' {
				return ErrChunked
			}
			k.state = chunkSize
		case chunkSize:
			n, err := k.sizeLine(line)
			if err != nil {
				return err
			}
			if n == 0 {
				k.state = chunkTrailer
			} else {
				k.left, k.state = n, chunkDataEnd
			}
		case chunkTrailer:
			k.trailer += len(line)
			if k.trailer > maxTrailer {
				return ErrHeadTooLarge
			}
			if len(line) < 2 || line[len(line)-2] != '\r' {
				return ErrChunked // bare LF
			}
			l, _ := nextLine(line)
			if len(l) == 0 {
				k.state = chunkDone
				break
			}
			colon := bytes.IndexByte(l, ':')
			if colon <= 0 || !ValidToken(l[:colon]) || !ValidFieldValue(TrimOWS(l[colon+1:])) || bytes.IndexByte(l, '\r') >= 0 {
				return ErrChunked
			}
		}
	}
	return nil
}

// sizeLine parses "hex[;ext]\r\n" (line includes its terminator) and keeps
// the excess-framing account.
func (k *chunked) sizeLine(line []byte) (int64, error) {
	if len(line) < 2 || line[len(line)-2] != '\r' || bytes.IndexByte(line[:len(line)-2], '\r') >= 0 {
		return 0, ErrChunked // bare LF, or a CR inside the line
	}
	line = line[:len(line)-2]
	k.excess += int64(len(line)) + 2
	for len(line) > 0 && (line[len(line)-1] == ' ' || line[len(line)-1] == '\t') {
		line = line[:len(line)-1] // trailing white space only, as net/http
	}
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	if len(line) == 0 || len(line) > maxChunkHexDigit {
		return 0, ErrChunked
	}
	var n int64
	for _, d := range line {
		v, ok := Unhex(d)
		if !ok {
			return 0, ErrChunked
		}
		n = n<<4 | int64(v)
	}
	k.excess = max(k.excess-chunkExcessFree-2*n, 0)
	if k.excess > maxChunkExcess {
		return 0, ErrChunkOverhead
	}
	return n, nil
}

// bufLine returns the next line in the read buffer, terminator included,
// reading more when block is set. A line longer than limit is an error.
func (c *conn) bufLine(block bool, limit int) ([]byte, bool, error) {
	for {
		if i := bytes.IndexByte(c.buf[c.r:c.w], '\n'); i >= 0 {
			if i+1 > limit {
				return nil, false, ErrChunked
			}
			line := c.buf[c.r : c.r+i+1]
			c.r += i + 1
			return line, true, nil
		}
		if !block {
			return nil, false, nil
		}
		if c.w-c.r >= limit {
			return nil, false, ErrChunked
		}
		if err := c.fill(max(limit+1, readBufSize)); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, false, err
		}
	}
}
