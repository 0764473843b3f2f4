package ratelimit

import (
	"net/http"
	"net/netip"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/mxedge/mxedge/config"
)

// BenchmarkCheck measures one memory-mode decision in parallel:
// go test -run XXX -bench Check -benchmem -cpu 1,2 ./ratelimit/
func BenchmarkCheck(b *testing.B) {
	cfg := defaults()
	cfg.RCMessage = config.Bucket{PerSecond: 1e6, BurstCount: 1e9}
	cfg.RCLogin.Address = config.Bucket{PerSecond: 1e6, BurstCount: 1e9}
	cases := []struct {
		name   string
		method string
		path   string
		token  string
		cats   Categories
		keys   int // distinct clients
	}{
		{"token/one", "PUT", "/_matrix/client/v3/rooms/!r:x/send/m.room.message/1", "syt_dGVzdA_abcdefghijklmnopqrst_0a1b2c", Of(Message), 1},
		{"token/10k", "PUT", "/_matrix/client/v3/rooms/!r:x/send/m.room.message/1", "", Of(Message), 10000},
		{"ip/10k", "POST", "/_matrix/client/v3/login", "", Of(LoginAddress), 10000},
		{"uncategorised", "GET", "/_matrix/client/v3/sync", "syt_x", 0, 1},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			l, _ := newLimiter(b, cfg, nil)
			reqs := make([]*requestCase, bc.keys)
			for i := range reqs {
				tok := bc.token
				if tok == "" && bc.cats.Has(Message) {
					tok = "syt_user" + strconv.Itoa(i) + "_abcdefghijklmnopqrst"
				}
				reqs[i] = &requestCase{r: newReq(bc.method, bc.path, tok, ""),
					a: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})}
			}
			var next atomic.Uint64
			b.ReportAllocs()
			cpu0 := cpuTime()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := int(next.Add(7919))
				for pb.Next() {
					rc := reqs[i%len(reqs)]
					i++
					if d := l.Check(rc.r, rc.a, bc.cats); !d.Allowed {
						b.Fatal("refused")
					}
				}
			})
			// On a shared machine wall time per op includes time the thread
			// waited for a CPU: also report the process CPU time per op.
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime returns the process's user+system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

type requestCase struct {
	r *http.Request
	a netip.Addr
}

// TestMemoryPerKey measures the heap held by 1,000,000 tracked buckets.
// go test -run MemoryPerKey -v ./ratelimit/  (skipped with -short)
func TestMemoryPerKey(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 1M buckets")
	}
	const n = 1000000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m := NewMemory(MemoryOptions{MaxKeys: n, SweepEvery: -1, Now: newClock().Now})
	defer m.Close()
	lim := NewLimit(0.003, 5)
	reqs := []Request{{Cat: LoginAddress, Name: "rc_login.address", Limit: lim, N: 1}}
	res := make([]Result, 1)
	for i := range n {
		reqs[0].Key = Key{Kind: KeyIP, Addr: AddrKey(netip.AddrFrom4([4]byte{byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}), 64)}
		m.allow(reqs, res)
		if !res[0].Allowed {
			t.Fatalf("key %d refused", i)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if got := m.Tracked(); got != n {
		t.Fatalf("tracked: got %d, want %d", got, n)
	}
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%d keys: %.1f MB heap, %.1f bytes/key", n, float64(after.HeapAlloc-before.HeapAlloc)/1e6, per)
	if per > 100 {
		t.Fatalf("got %.1f bytes/key, want <= 100", per)
	}
	runtime.KeepAlive(m)
}
