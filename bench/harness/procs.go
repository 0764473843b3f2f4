package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is one started process (a proxy, the upstream), stopped by its PID.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// startProc starts argv pinned to cpu (taskset execs the program, so the PID is the
// program's), its output into logPath.
func startProc(name, cpu, logPath string, env []string, argv ...string) (*proc, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	args := append([]string{"-c", cpu}, argv...)
	cmd := exec.Command("taskset", args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	// Every process is pinned to one core. Go programs (the upstream, goproxy, Caddy,
	// mxedge) get GOMAXPROCS=1 said explicitly, as nginx gets one worker: it is what the
	// runtime derives from the affinity mask anyway, and fixed so that the runtime never
	// revises it when the harness moves the upstream between cores.
	cmd.Env = append(append(os.Environ(), "GOMAXPROCS=1"), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		lf.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the PID, waits up to 5 s, then SIGKILLs the PID (and, for
// nginx-style masters whose workers outlive them, every remaining descendant).
func (p *proc) stop() {
	if p == nil || p.exited() {
		return
	}
	kids := descendants(p.pid())
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	for _, k := range kids {
		if alive(k) {
			_ = syscall.Kill(k, syscall.SIGKILL)
		}
	}
}

func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// descendants lists every process below pid (children, grandchildren…) from /proc.
func descendants(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	parent := map[int][]int{}
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			continue
		}
		pp, _ := strconv.Atoi(f[1])
		parent[pp] = append(parent[pp], n)
	}
	var out []int
	q := []int{pid}
	for len(q) > 0 {
		c := q[0]
		q = q[1:]
		for _, k := range parent[c] {
			out = append(out, k)
			q = append(q, k)
		}
	}
	return out
}

// statusKB reads a "Key:   N kB" field of /proc/PID/status.
func statusKB(pid int, key string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		l := s.Text()
		if strings.HasPrefix(l, key+":") {
			fs := strings.Fields(l[len(key)+1:])
			if len(fs) > 0 {
				n, _ := strconv.ParseInt(fs[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// treeRSS is the VmRSS of pid and all its descendants, in KiB.
func treeRSS(pid int) int64 {
	t := statusKB(pid, "VmRSS")
	for _, k := range descendants(pid) {
		t += statusKB(k, "VmRSS")
	}
	return t
}

// rssSampler polls treeRSS every interval until stopped and keeps the peak.
type rssSampler struct {
	stopc chan struct{}
	donec chan struct{}
	peak  int64
}

func sampleRSS(pid int, every time.Duration) *rssSampler {
	s := &rssSampler{stopc: make(chan struct{}), donec: make(chan struct{})}
	kids := append([]int{pid}, descendants(pid)...)
	go func() {
		defer close(s.donec)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			var r int64
			for _, k := range kids {
				r += statusKB(k, "VmRSS")
			}
			if r > s.peak {
				s.peak = r
			}
			select {
			case <-s.stopc:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) stop() int64 {
	close(s.stopc)
	<-s.donec
	return s.peak
}

// cpuTicks is a process tree's CPU time in clock ticks (USER_HZ, 100 per second on
// Linux): user and system separately, summed over pid and every descendant (nginx's and
// HAProxy's workers), each read from /proc/PID/stat (utime and stime cover all the
// process's threads).
type cpuTicks struct{ user, sys int64 }

func (c cpuTicks) total() int64 { return c.user + c.sys }

func (c cpuTicks) sub(o cpuTicks) cpuTicks { return cpuTicks{c.user - o.user, c.sys - o.sys} }

// treeCPU reads pid's tree's CPU time now.
func treeCPU(pid int) cpuTicks {
	var t cpuTicks
	for _, k := range append([]int{pid}, descendants(pid)...) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", k))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		// after the comm: state(0) ppid(1) … utime(11) stime(12)
		if len(f) > 12 {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			s, _ := strconv.ParseInt(f[12], 10, 64)
			t.user += u
			t.sys += s
		}
	}
	return t
}

// treeCPUTicks is the user+system CPU time of pid and its descendants, in ticks.
func treeCPUTicks(pid int) int64 { return treeCPU(pid).total() }

// tickUS is one clock tick in µs.
const tickUS = 1e4

// setAffinity moves every thread of pid to cpu (taskset -a -p): the layout switch
// for a running process (Go programs here run with GOMAXPROCS=1 either way).
func setAffinity(pid int, cpu string) error {
	out, err := exec.Command("taskset", "-a", "-p", "-c", cpu, strconv.Itoa(pid)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("taskset -a -p -c %s %d: %v: %s", cpu, pid, err, out)
	}
	return nil
}

// affinity reads the CPU list pid may run on (Cpus_allowed_list of /proc/PID/status).
func affinity(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// timeWait counts TIME_WAIT sockets towards port on loopback (from /proc/net/tcp).
func timeWait(port int) int {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return 0
	}
	want := fmt.Sprintf(":%04X", port)
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 3 && f[3] == "06" && strings.HasSuffix(f[2], want) {
			n++
		}
	}
	return n
}

// waitTimeWait waits (at most 65 s, the kernel's TIME_WAIT is 60 s) until fewer than
// max sockets towards each port linger in TIME_WAIT, so that a run never fails for
// want of ephemeral ports left behind by the previous one.
func waitTimeWait(max int, ports ...int) {
	deadline := time.Now().Add(65 * time.Second)
	for time.Now().Before(deadline) {
		busy := false
		for _, p := range ports {
			if timeWait(p) >= max {
				busy = true
			}
		}
		if !busy {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}
