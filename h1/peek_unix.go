//go:build linux || darwin || freebsd || netbsd || openbsd

package h1

import "syscall"

// peekIdle reports whether an idle socket holds nothing and is still open:
// a non-blocking MSG_PEEK finds bytes nobody asked for, a close (EOF) or a
// reset. One system call; it never consumes a byte. A connection that is
// not a socket (raw nil) is assumed idle.
func peekIdle(raw syscall.RawConn) bool {
	if raw == nil {
		return true
	}
	var buf [1]byte
	idle := false
	err := raw.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		idle = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
		return true
	})
	return err == nil && idle
}
