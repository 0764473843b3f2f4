package proxy

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/mxedge/mxedge/config"
)

func TestClientAddr(t *testing.T) {
	trusted := config.Prefixes{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("192.168.1.0/24"),
		netip.MustParsePrefix("fd00::/8"),
	}
	const (
		proxyPeer = "10.0.0.1"
		stranger  = "203.0.113.9"
	)
	tests := []struct {
		name       string
		peer       string
		h          http.Header
		wantClient string
		wantProto  string
	}{
		{"untrusted peer", stranger, nil, stranger, ""},
		{"untrusted peer ignores headers", stranger, http.Header{"X-Forwarded-For": {"1.1.1.1"}, "X-Forwarded-Proto": {"https"}}, stranger, ""},
		{"untrusted mapped peer", "::ffff:203.0.113.9", nil, stranger, ""},
		{"untrusted v6 peer", "2001:db8::1", http.Header{"X-Forwarded-For": {"1.1.1.1"}}, "2001:db8::1", ""},
		{"untrusted zoned peer", "fe80::1%eth0", nil, "fe80::1", ""},
		{"invalid peer", "", http.Header{"X-Forwarded-For": {"1.1.1.1"}}, "invalid IP", ""},
		{"trusted no headers", proxyPeer, nil, proxyPeer, ""},
		{"trusted mapped peer", "::ffff:10.0.0.1", http.Header{"X-Forwarded-For": {"1.2.3.4"}}, "1.2.3.4", ""},
		{"xff single", proxyPeer, http.Header{"X-Forwarded-For": {"1.2.3.4"}}, "1.2.3.4", ""},
		{"xff spoofed left", proxyPeer, http.Header{"X-Forwarded-For": {"6.6.6.6, 1.2.3.4"}}, "1.2.3.4", ""},
		{"xff skips trusted", proxyPeer, http.Header{"X-Forwarded-For": {"6.6.6.6, 1.2.3.4, 10.1.1.1, 192.168.1.7"}}, "1.2.3.4", ""},
		{"xff all trusted", proxyPeer, http.Header{"X-Forwarded-For": {"10.9.9.9, 10.1.1.1"}}, "10.9.9.9", ""},
		{"xff multiple lines", proxyPeer, http.Header{"X-Forwarded-For": {"6.6.6.6, 1.2.3.4", "10.1.1.1"}}, "1.2.3.4", ""},
		{"xff multiple lines right", proxyPeer, http.Header{"X-Forwarded-For": {"6.6.6.6", "1.2.3.4, 10.1.1.1"}}, "1.2.3.4", ""},
		{"xff port v4", proxyPeer, http.Header{"X-Forwarded-For": {"1.2.3.4:5678"}}, "1.2.3.4", ""},
		{"xff bracket v6 port", proxyPeer, http.Header{"X-Forwarded-For": {"[2001:db8::1]:443"}}, "2001:db8::1", ""},
		{"xff bracket v6", proxyPeer, http.Header{"X-Forwarded-For": {"[2001:db8::1]"}}, "2001:db8::1", ""},
		{"xff bare v6", proxyPeer, http.Header{"X-Forwarded-For": {"2001:db8::1"}}, "2001:db8::1", ""},
		{"xff mapped", proxyPeer, http.Header{"X-Forwarded-For": {"::ffff:1.2.3.4"}}, "1.2.3.4", ""},
		{"xff mapped bracket", proxyPeer, http.Header{"X-Forwarded-For": {"[::ffff:1.2.3.4]:80"}}, "1.2.3.4", ""},
		{"xff mapped trusted", proxyPeer, http.Header{"X-Forwarded-For": {"1.2.3.4, ::ffff:10.2.2.2"}}, "1.2.3.4", ""},
		{"xff spaces tabs", proxyPeer, http.Header{"X-Forwarded-For": {" \t1.2.3.4 \t, 10.1.1.1 "}}, "1.2.3.4", ""},
		{"xff empty entries", proxyPeer, http.Header{"X-Forwarded-For": {",1.2.3.4,,"}}, "1.2.3.4", ""},
		{"xff garbage rightmost", proxyPeer, http.Header{"X-Forwarded-For": {"1.2.3.4, garbage"}}, proxyPeer, ""},
		{"xff garbage after trusted", proxyPeer, http.Header{"X-Forwarded-For": {"1.2.3.4, nonsense, 10.3.3.3"}}, "10.3.3.3", ""},
		{"xff garbage left of client", proxyPeer, http.Header{"X-Forwarded-For": {"garbage, 1.2.3.4"}}, "1.2.3.4", ""},
		{"xff hostname", proxyPeer, http.Header{"X-Forwarded-For": {"client.example"}}, proxyPeer, ""},
		{"xff unknown", proxyPeer, http.Header{"X-Forwarded-For": {"unknown"}}, proxyPeer, ""},
		{"xff zone", proxyPeer, http.Header{"X-Forwarded-For": {"fe80::1%eth0"}}, proxyPeer, ""},
		{"xff bad port", proxyPeer, http.Header{"X-Forwarded-For": {"1.2.3.4:99999"}}, proxyPeer, ""},
		{"xff v6 unbracketed port", proxyPeer, http.Header{"X-Forwarded-For": {"[2001:db8::1"}}, proxyPeer, ""},
		{"xff v4 in brackets", proxyPeer, http.Header{"X-Forwarded-For": {"[1.2.3.4]"}}, proxyPeer, ""},
		{"xff only empty", proxyPeer, http.Header{"X-Forwarded-For": {" , "}}, proxyPeer, ""},
		{"xff lowercase key ignored", proxyPeer, http.Header{"x-forwarded-for": {"1.2.3.4"}}, proxyPeer, ""},

		{"xfp https", proxyPeer, http.Header{"X-Forwarded-Proto": {"https"}}, proxyPeer, "https"},
		{"xfp upper", proxyPeer, http.Header{"X-Forwarded-Proto": {"HTTPS"}}, proxyPeer, "https"},
		{"xfp last value", proxyPeer, http.Header{"X-Forwarded-Proto": {"https, http"}}, proxyPeer, "http"},
		{"xfp last line", proxyPeer, http.Header{"X-Forwarded-Proto": {"http", " https "}}, proxyPeer, "https"},
		{"xfp invalid", proxyPeer, http.Header{"X-Forwarded-Proto": {"ftp"}}, proxyPeer, ""},
		{"xfp invalid beats forwarded", proxyPeer, http.Header{"X-Forwarded-Proto": {"wss"}, "Forwarded": {"proto=https"}}, proxyPeer, ""},

		{"fwd for", proxyPeer, http.Header{"Forwarded": {"for=1.2.3.4"}}, "1.2.3.4", ""},
		{"fwd quoted port", proxyPeer, http.Header{"Forwarded": {`for="1.2.3.4:4711"`}}, "1.2.3.4", ""},
		{"fwd v6", proxyPeer, http.Header{"Forwarded": {`for="[2001:db8:cafe::17]:4711"`}}, "2001:db8:cafe::17", ""},
		{"fwd v6 no port", proxyPeer, http.Header{"Forwarded": {`For="[2001:db8:cafe::17]"`}}, "2001:db8:cafe::17", ""},
		{"fwd proto", proxyPeer, http.Header{"Forwarded": {"for=1.2.3.4;proto=https;by=10.0.0.1"}}, "1.2.3.4", "https"},
		{"fwd proto rightmost", proxyPeer, http.Header{"Forwarded": {"for=6.6.6.6;proto=http, for=1.2.3.4;proto=https"}}, "1.2.3.4", "https"},
		{"fwd proto rightmost only", proxyPeer, http.Header{"Forwarded": {"for=6.6.6.6;proto=https, for=1.2.3.4"}}, "1.2.3.4", ""},
		{"fwd spoofed left", proxyPeer, http.Header{"Forwarded": {"for=6.6.6.6, for=1.2.3.4, for=10.1.1.1"}}, "1.2.3.4", ""},
		{"fwd multiple lines", proxyPeer, http.Header{"Forwarded": {"for=6.6.6.6", "for=1.2.3.4;proto=https"}}, "1.2.3.4", "https"},
		{"fwd all trusted", proxyPeer, http.Header{"Forwarded": {"for=10.5.5.5, for=10.1.1.1"}}, "10.5.5.5", ""},
		{"fwd unknown", proxyPeer, http.Header{"Forwarded": {"for=6.6.6.6, for=unknown, for=10.1.1.1"}}, proxyPeer, ""},
		{"fwd obfuscated", proxyPeer, http.Header{"Forwarded": {"for=_hidden, for=10.1.1.1"}}, proxyPeer, ""},
		{"fwd obfuscated port", proxyPeer, http.Header{"Forwarded": {`for="1.2.3.4:_port"`}}, "1.2.3.4", ""},
		{"fwd unknown port", proxyPeer, http.Header{"Forwarded": {`for="unknown:80"`}}, proxyPeer, ""},
		{"fwd missing for", proxyPeer, http.Header{"Forwarded": {"for=6.6.6.6, by=10.0.0.1, for=10.1.1.1"}}, "10.1.1.1", ""},
		{"fwd bad node", proxyPeer, http.Header{"Forwarded": {"for=1.2.3.4, for=host.example"}}, proxyPeer, ""},
		{"fwd bad syntax", proxyPeer, http.Header{"Forwarded": {"for 1.2.3.4"}}, proxyPeer, ""},
		{"fwd garbage left", proxyPeer, http.Header{"Forwarded": {"garbage!!, for=1.2.3.4"}}, "1.2.3.4", ""},
		{"fwd unterminated quote left", proxyPeer, http.Header{"Forwarded": {`for="6.6.6.6, for=1.2.3.4`}}, proxyPeer, ""},
		{"fwd quoted comma", proxyPeer, http.Header{"Forwarded": {`for=1.2.3.4;ext="a,b"`}}, "1.2.3.4", ""},
		{"fwd escape in node", proxyPeer, http.Header{"Forwarded": {`for="1.2.3.\4"`}}, proxyPeer, ""},
		{"fwd duplicate for", proxyPeer, http.Header{"Forwarded": {"for=6.6.6.6;for=1.2.3.4"}}, proxyPeer, ""},
		{"fwd empty elements", proxyPeer, http.Header{"Forwarded": {", for=1.2.3.4 ,"}}, "1.2.3.4", ""},
		{"fwd mapped", proxyPeer, http.Header{"Forwarded": {`for="[::ffff:1.2.3.4]"`}}, "1.2.3.4", ""},
		{"fwd bare v6", proxyPeer, http.Header{"Forwarded": {`for="2001:db8::5"`}}, "2001:db8::5", ""},
		{"fwd spaces around pairs", proxyPeer, http.Header{"Forwarded": {" for=1.2.3.4 ; proto=https "}}, "1.2.3.4", "https"},
		{"xff wins over fwd", proxyPeer, http.Header{"X-Forwarded-For": {"1.2.3.4"}, "Forwarded": {"for=5.5.5.5"}}, "1.2.3.4", ""},
		{"xff with fwd proto", proxyPeer, http.Header{"X-Forwarded-For": {"1.2.3.4"}, "Forwarded": {"proto=https"}}, "1.2.3.4", "https"},
		{"empty xff falls to fwd", proxyPeer, http.Header{"X-Forwarded-For": {""}, "Forwarded": {"for=5.5.5.5"}}, "5.5.5.5", ""},
		{"many fwd elements", proxyPeer, http.Header{"Forwarded": {strings.Repeat("for=6.6.6.6, ", 40) + "for=1.2.3.4"}}, "1.2.3.4", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var peer netip.Addr
			if tc.peer != "" {
				peer = netip.MustParseAddr(tc.peer)
			}
			client, proto := ClientAddr(peer, tc.h, trusted)
			if client.String() != tc.wantClient || proto != tc.wantProto {
				t.Errorf("ClientAddr(%s, %v) = %v, %q; want %s, %q", tc.peer, tc.h, client, proto, tc.wantClient, tc.wantProto)
			}
		})
	}
}

func TestClientAddrAllocs(t *testing.T) {
	trusted := config.Prefixes{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	peer := netip.MustParseAddr("10.0.0.1")
	for _, h := range []http.Header{
		{"X-Forwarded-For": {"1.2.3.4"}, "X-Forwarded-Proto": {"https"}},
		{"X-Forwarded-For": {"6.6.6.6, [2001:db8::1]:443, 10.0.0.2"}},
		{"Forwarded": {`for="[2001:db8::1]:443";proto=https, for=10.0.0.2`}},
	} {
		if n := testing.AllocsPerRun(100, func() { ClientAddr(peer, h, trusted) }); n != 0 {
			t.Errorf("ClientAddr(%v) allocates %v times, want 0", h, n)
		}
	}
}

func FuzzClientAddr(f *testing.F) {
	f.Add("1.2.3.4, 10.0.0.2", "https", `for="[2001:db8::1]:80";proto=http`, true)
	f.Add("", "", `for=unknown, for=10.0.0.3`, true)
	f.Add("[::ffff:1.2.3.4]:1", "HTTP", `for="6.6.6.6`, false)
	trusted := config.Prefixes{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}
	f.Fuzz(func(t *testing.T, xff, xfp, fwd string, trustPeer bool) {
		peer := netip.MustParseAddr("198.51.100.1")
		if trustPeer {
			peer = netip.MustParseAddr("10.0.0.1")
		}
		h := http.Header{}
		if xff != "" {
			h["X-Forwarded-For"] = strings.Split(xff, "\n")
		}
		if xfp != "" {
			h["X-Forwarded-Proto"] = []string{xfp}
		}
		if fwd != "" {
			h["Forwarded"] = strings.Split(fwd, "\n")
		}
		client, proto := ClientAddr(peer, h, trusted)
		if !trustPeer {
			if client != peer || proto != "" {
				t.Fatalf("untrusted peer: got %v, %q", client, proto)
			}
			return
		}
		if !client.IsValid() || client.Is4In6() || client.Zone() != "" {
			t.Fatalf("got client %v, want a valid unmapped address", client)
		}
		if proto != "" && proto != "http" && proto != "https" {
			t.Fatalf("got proto %q", proto)
		}
		// The client is the peer or an address present in the headers.
		if client != peer && !fuzzMentions(xff+"\n"+fwd, client) {
			t.Fatalf("client %v appears in no header (xff %q, forwarded %q)", client, xff, fwd)
		}
		// With a clean X-Forwarded-For of addresses, the result is the
		// rightmost untrusted one.
		if xff != "" && !strings.ContainsAny(xff, "\n[]:%") {
			var want netip.Addr
			all := true
			var leftmost netip.Addr
			for _, e := range strings.Split(xff, ",") {
				e = strings.Trim(e, " \t")
				if e == "" {
					continue
				}
				a, err := netip.ParseAddr(e)
				if err != nil {
					return
				}
				if !leftmost.IsValid() {
					leftmost = a
				}
				if !trusted.Contains(a) {
					want, all = a, false
				}
			}
			if all {
				want = leftmost
			}
			if want.IsValid() && client != want {
				t.Fatalf("xff %q: got %v, want %v", xff, client, want)
			}
		}
	})
}

// fuzzMentions reports whether s holds a the address a in some spelling.
func fuzzMentions(s string, a netip.Addr) bool {
	fields := strings.FieldsFunc(s, func(r rune) bool {
		return strings.ContainsRune(" \t,;=\"[]\n", r)
	})
	for _, f := range fields {
		for _, cand := range []string{f, strings.Split(f, ":")[0]} {
			if b, err := netip.ParseAddr(cand); err == nil && b.Unmap() == a {
				return true
			}
		}
		if i := strings.LastIndexByte(f, ':'); i > 0 {
			if b, err := netip.ParseAddr(f[:i]); err == nil && b.Unmap() == a {
				return true
			}
		}
	}
	return false
}

func BenchmarkClientAddr(b *testing.B) {
	trusted := config.Prefixes{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	for _, bc := range []struct {
		name string
		peer string
		h    http.Header
	}{
		{"untrusted", "203.0.113.9", http.Header{"X-Forwarded-For": {"1.2.3.4"}}},
		{"xff", "10.0.0.1", http.Header{"X-Forwarded-For": {"1.2.3.4"}, "X-Forwarded-Proto": {"https"}}},
		{"xff chain", "10.0.0.1", http.Header{"X-Forwarded-For": {"6.6.6.6, [2001:db8::1]:443, 10.0.0.2"}}},
		{"forwarded", "10.0.0.1", http.Header{"Forwarded": {`for="[2001:db8::1]:443";proto=https, for=10.0.0.2`}}},
	} {
		peer := netip.MustParseAddr(bc.peer)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ClientAddr(peer, bc.h, trusted)
			}
		})
	}
}
