package config

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

const examplePath = "../deploy/mxedge.example.yaml"

// TestExampleFileValidates loads the shipped example as mxedge validate does.
func TestExampleFileValidates(t *testing.T) {
	c, err := Load(LoadOptions{Path: examplePath})
	if err != nil {
		t.Fatalf("got %v, want the example to validate", err)
	}
	if c.ServerName != "example.org" {
		t.Errorf("server_name: got %q, want example.org", c.ServerName)
	}
}

// TestExampleFileUncommented: every commented example line under tls and
// rate_limits is valid YAML that decodes without unknown keys when
// uncommented (validation of values needing files or a CA is not checked).
func TestExampleFileUncommented(t *testing.T) {
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^(\s+)#([a-z_0-9]+:.*)$`)
	un := re.ReplaceAllString(string(data), "$1$2")
	p := &problems{file: "uncommented", lines: map[string]int{}}
	decodeFile([]byte(un), Defaults(), p)
	if len(p.list) != 0 {
		t.Errorf("uncommented example: got problems %v, want none", p.list)
	}
}

// TestExampleAndDocsCoverEveryKey: every core key of Config appears in the
// example file and in docs/CONFIG.md. The tls and rate_limits sections are
// documented by their owners (docs/TLS.md, docs/RATELIMITS.md) and only
// summarised there, so they are not checked key by key.
func TestExampleAndDocsCoverEveryKey(t *testing.T) {
	example, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := os.ReadFile("../docs/CONFIG.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range leafKeys(reflect.TypeFor[Config](), "") {
		if strings.HasPrefix(k, "tls.") || strings.HasPrefix(k, "rate_limits.") {
			continue
		}
		last := k[strings.LastIndex(k, ".")+1:]
		if !regexp.MustCompile(`(?m)^\s*#?\s*-?\s*\{?`+regexp.QuoteMeta(last)+`:`).Match(example) && !strings.Contains(string(example), last+":") {
			t.Errorf("key %s missing from %s", k, examplePath)
		}
		if !strings.Contains(string(docs), "`"+k+"`") {
			t.Errorf("key %s missing from docs/CONFIG.md", k)
		}
	}
}

// leafKeys lists the dotted keys of t's fields down to non-struct values
// (Size and Duration are leaves).
func leafKeys(t reflect.Type, prefix string) []string {
	var out []string
	for name, idx := range yamlFields(t) {
		f := t.FieldByIndex(idx)
		k := joinKey(prefix, name)
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && !reflect.PointerTo(ft).Implements(unmarshalerType) {
			out = append(out, leafKeys(ft, k)...)
			continue
		}
		out = append(out, k)
	}
	return out
}

// TestEnvVarsDocumented: every MXEDGE_* variable is in docs/CONFIG.md and
// names a key that exists.
func TestEnvVarsDocumented(t *testing.T) {
	docs, err := os.ReadFile("../docs/CONFIG.md")
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, k := range leafKeys(reflect.TypeFor[Config](), "") {
		keys[k] = true
	}
	for _, v := range EnvVars() {
		if !strings.Contains(string(docs), "`"+v.Name+"`") {
			t.Errorf("%s missing from docs/CONFIG.md", v.Name)
		}
		if v.Key != "" && !keys[v.Key] {
			t.Errorf("%s sets unknown key %q", v.Name, v.Key)
		}
		if (v.Key == "") != (v.set == nil) {
			t.Errorf("%s: key %q and setter disagree", v.Name, v.Key)
		}
	}
}
