//go:build linux || darwin || freebsd || netbsd || openbsd

package proxy

import "syscall"

// alive peeks at an idle connection without blocking: a peer that closed it
// (EOF), reset it, or sent bytes nobody asked for makes it unusable.
func (c *upConn) alive() bool {
	if c.raw == nil {
		return true
	}
	var buf [1]byte
	ok := false
	err := c.raw.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		ok = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
		return true
	})
	return err == nil && ok
}
