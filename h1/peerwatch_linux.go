//go:build linux

package h1

import (
	"sync"
	"syscall"
)

// peerWatcher notices clients that close their connection while a request
// waits on its context, without a goroutine per request: those sockets are
// registered (EPOLLRDHUP, one shot) with one epoll instance of mxedge's own,
// read by one goroutine for the whole process. Registering does not read
// the socket, so no byte of a next request is taken, over TLS too.
type peerWatcher struct {
	once sync.Once
	epfd int
	err  error
	mu   sync.Mutex
	regs map[uint64]*peerCtx
	next uint64
}

var peers peerWatcher

func (w *peerWatcher) start() error {
	w.once.Do(func() {
		w.epfd, w.err = syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if w.err == nil {
			w.regs = map[uint64]*peerCtx{}
			go w.run()
		}
	})
	return w.err
}

func (w *peerWatcher) run() {
	events := make([]syscall.EpollEvent, 64)
	for {
		n, err := syscall.EpollWait(w.epfd, events, -1)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return
		}
		for _, ev := range events[:n] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			w.mu.Lock()
			c := w.regs[id]
			delete(w.regs, id)
			w.mu.Unlock()
			if c != nil {
				c.peerGone(id)
			}
		}
	}
}

// add watches the socket of raw for c; false when it cannot (not a socket,
// no epoll).
func (w *peerWatcher) add(raw syscall.RawConn, c *peerCtx) (uint64, bool) {
	if raw == nil || w.start() != nil {
		return 0, false
	}
	w.mu.Lock()
	w.next++
	id := w.next
	w.regs[id] = c
	w.mu.Unlock()
	var err error
	cerr := raw.Control(func(fd uintptr) {
		ev := syscall.EpollEvent{
			Events: syscall.EPOLLRDHUP | syscall.EPOLLHUP | syscall.EPOLLERR | syscall.EPOLLONESHOT,
			Fd:     int32(uint32(id)),
			Pad:    int32(uint32(id >> 32)),
		}
		err = syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if err != nil || cerr != nil {
		w.mu.Lock()
		delete(w.regs, id)
		w.mu.Unlock()
		return 0, false
	}
	return id, true
}

// remove stops watching (the request ended).
func (w *peerWatcher) remove(raw syscall.RawConn, id uint64) {
	w.mu.Lock()
	delete(w.regs, id)
	w.mu.Unlock()
	raw.Control(func(fd uintptr) {
		syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil)
	})
}
