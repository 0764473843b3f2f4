//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package h1

import "syscall"

// peekIdle cannot peek on this platform: a dead connection is found by the
// exchange itself (and retried when that is safe).
func peekIdle(syscall.RawConn) bool { return true }
