//go:build !linux

package h1

import "syscall"

// peerWatcher is Linux-only (epoll); elsewhere a client that goes away is
// noticed when its answer is written.
type peerWatcher struct{}

var peers peerWatcher

func (w *peerWatcher) add(syscall.RawConn, *peerCtx) (uint64, bool) { return 0, false }
func (w *peerWatcher) remove(syscall.RawConn, uint64)               {}
