package testkit

import (
	"net"
	"net/http/httptest"
	"sync"
)

// Divert takes front's connections away from its net/http server before it
// starts: they are accepted from the returned listener instead, which the
// server under test serves. front keeps its URL, Client and Close (closing
// it closes both listeners); Start or StartTLS it as usual after Divert.
func Divert(front *httptest.Server) net.Listener {
	d := &diverted{real: front.Listener, ch: make(chan net.Conn), done: make(chan struct{})}
	front.Listener = (*outer)(d)
	go func() {
		for {
			c, err := d.real.Accept()
			if err != nil {
				d.close()
				return
			}
			select {
			case d.ch <- c:
			case <-d.done:
				c.Close()
				return
			}
		}
	}()
	return (*inner)(d)
}

type diverted struct {
	real net.Listener
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func (d *diverted) close() {
	d.once.Do(func() {
		close(d.done)
		d.real.Close()
	})
}

// outer is what net/http's server accepts from: nothing, until closed.
type outer diverted

func (o *outer) Accept() (net.Conn, error) {
	<-o.done
	return nil, net.ErrClosed
}
func (o *outer) Close() error   { (*diverted)(o).close(); return nil }
func (o *outer) Addr() net.Addr { return o.real.Addr() }

// inner is what the server under test accepts from.
type inner diverted

func (i *inner) Accept() (net.Conn, error) {
	select {
	case c := <-i.ch:
		return c, nil
	case <-i.done:
		return nil, net.ErrClosed
	}
}
func (i *inner) Close() error   { (*diverted)(i).close(); return nil }
func (i *inner) Addr() net.Addr { return i.real.Addr() }
