package testkit

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// Golden compares got with the golden file at path and returns the file's
// content. When update is set (the package's -update flag) it first writes
// got to path. A difference is an error of the test, reported line by line.
func Golden(t testing.TB, path string, got []byte, update bool) []byte {
	t.Helper()
	if update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run go test -update to accept):\n%s", path, diffLines(string(want), string(got)))
	}
	return want
}

// diffLines lists the lines that differ between want and got, by number
// ("(none)" past the end of one of them).
func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	line := func(ls []string, i int) string {
		if i < len(ls) {
			return strconv.Quote(ls[i])
		}
		return "(none)"
	}
	var b strings.Builder
	for i := 0; i < len(w) || i < len(g); i++ {
		if wl, gl := line(w, i), line(g, i); wl != gl {
			fmt.Fprintf(&b, "line %d:\n  got  %s\n  want %s\n", i+1, gl, wl)
		}
	}
	return b.String()
}
