package pattern

import "io"

// BlockSize is the length of the repeated block.
const BlockSize = 1 << 20

// Block returns a new copy of the 1 MiB block.
func Block() []byte {
	b := make([]byte, BlockSize)
	x := uint64(0x9E3779B97F4A7C15)
	for i := 0; i < len(b); i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		for j := 0; j < 8; j++ {
			b[i+j] = byte(x >> (8 * j))
		}
	}
	return b
}

// Reader yields n bytes of the pattern. It is not safe for concurrent use.
type Reader struct {
	block []byte
	off   int64
	n     int64
}

// NewReader returns a Reader of n bytes over block (from Block).
func NewReader(block []byte, n int64) *Reader { return &Reader{block: block, n: n} }

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	i := int(r.off % BlockSize)
	rest := r.n - r.off
	if int64(len(p)) > rest {
		p = p[:rest]
	}
	c := copy(p, r.block[i:])
	r.off += int64(c)
	return c, nil
}
