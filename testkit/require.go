package testkit

import (
	"os"
	"os/exec"
	"testing"
)

// RequireEnv is the environment variable that makes a missing component a
// failure instead of a skip when set to "1". `make test` sets it.
const RequireEnv = "MXEDGE_REQUIRE_COMPONENTS"

// Require returns the path of the program name found on PATH. When it is
// absent, Require skips the test, or fails it when RequireEnv is "1".
func Require(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("%s not on PATH (%s=1): %v", name, RequireEnv, err)
		}
		t.Skipf("%s not on PATH: %v", name, err)
	}
	return p
}
