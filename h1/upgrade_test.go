package h1

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mxedge/mxedge/testkit"
)

func TestUpgrade(t *testing.T) {
	u := testkit.NewRawUpstream(t, nil, func(_ int, req *http.Request, c net.Conn) bool {
		if req.Header.Get("Upgrade") != "websocket" || !strings.EqualFold(req.Header.Get("Connection"), "Upgrade") || req.Header.Get("Sec-Websocket-Key") != "k" {
			io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
			return false
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: a\r\n\r\nhello")
		buf := make([]byte, 4)
		io.ReadFull(c, buf)
		c.Write(buf) // echo
		return true
	})
	p := poolTo(t, u, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := &Request{Method: "GET", Path: "/rtc", Host: "h", Header: http.Header{"Sec-Websocket-Key": {"k"}, "Connection": {"Upgrade"}, "Upgrade": {"websocket"}}, Upgrade: "websocket"}
	res, err := p.RoundTrip(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	if res.Status != 101 {
		t.Fatalf("status %d", res.Status)
	}
	h := http.Header{}
	res.Header(h)
	if h.Get("Sec-Websocket-Accept") != "a" || h.Get("Upgrade") != "" || h.Get("Connection") != "" {
		t.Errorf("header %v: want Sec-WebSocket-Accept, without hop-by-hop fields (the caller writes its own)", h)
	}
	conn, rest := res.Upgraded()
	if string(rest) != "hello" {
		t.Errorf("bytes after the head %q, want hello", rest)
	}
	conn.Write([]byte("ping"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "ping" {
		t.Errorf("echo %q %v", buf, err)
	}
	if p.Busy() != 1 {
		t.Errorf("busy %d while the tunnel lives, want 1", p.Busy())
	}
	res.Close()
	if p.Busy() != 0 || p.Idle() != 0 {
		t.Errorf("after Close: busy %d idle %d, want 0 0 (an upgraded connection is never pooled)", p.Busy(), p.Idle())
	}
}

func TestUpgradeRefused(t *testing.T) {
	tests := []struct {
		name, reply, upgrade string
		want                 error
		status               int
	}{
		{"101 to another protocol", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n", "websocket", ErrSwitch, 0},
		{"101 without Connection: upgrade", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", "websocket", ErrSwitch, 0},
		{"101 nobody asked for", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", "", ErrSwitch, 0},
		{"upgrade declined", "HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\n\r\nno", "websocket", nil, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := testkit.NewRawUpstream(t, nil, answers(tt.reply))
			r := exchange(context.Background(), poolTo(t, u, nil), &Request{Method: "GET", Path: "/", Host: "h", Header: http.Header{}, Upgrade: tt.upgrade})
			if !errors.Is(r.err, tt.want) || r.status != tt.status {
				t.Errorf("got %d %v, want %d %v", r.status, r.err, tt.status, tt.want)
			}
		})
	}
}
