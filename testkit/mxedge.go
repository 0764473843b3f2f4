package testkit

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// MxedgePackage is the import path of the mxedge command.
const MxedgePackage = "github.com/mxedge/mxedge/cmd/mxedge"

// build is the mxedge binary of this test process: built once, by the
// first test that needs it, into a directory that Main removes. path, out
// and err are written inside once; main and dir are read by Main too,
// under mu.
var build struct {
	once sync.Once
	path string
	out  []byte
	err  error

	mu   sync.Mutex
	main bool   // Main is running the tests
	dir  string // removed by Main
}

// Main runs the package's tests and removes what testkit built for them,
// then exits. A package whose tests call MxedgeBinary or StartMxedge calls
// it from its TestMain:
//
//	func TestMain(m *testing.M) { testkit.Main(m) }
func Main(m *testing.M) {
	build.mu.Lock()
	build.main = true
	build.mu.Unlock()
	code := m.Run()
	build.mu.Lock()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	build.mu.Unlock()
	os.Exit(code)
}

// MxedgeBinary returns the path of the mxedge binary, building it on first
// use in this test process (a plain `go build` of MxedgePackage with the
// environment's settings: no -race, CGO_ENABLED as set). Every test that
// calls it fails when the build failed. It fails the test when the
// package's TestMain does not call Main (the binary would be left behind).
func MxedgeBinary(t testing.TB) string {
	t.Helper()
	build.mu.Lock()
	inMain := build.main
	build.mu.Unlock()
	if !inMain {
		t.Fatal("testkit.MxedgeBinary: the package's TestMain must call testkit.Main, which removes the binary")
	}
	build.once.Do(func() {
		dir, err := os.MkdirTemp("", "mxedge-test-bin")
		if err != nil {
			build.err = err
			return
		}
		build.mu.Lock()
		build.dir = dir
		build.mu.Unlock()
		build.path = filepath.Join(dir, "mxedge")
		build.out, build.err = exec.Command("go", "build", "-o", build.path, MxedgePackage).CombinedOutput()
	})
	if build.err != nil {
		t.Fatalf("building mxedge: %v\n%s", build.err, build.out)
	}
	return build.path
}
