package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/mxedge/mxedge/config"
	"github.com/mxedge/mxedge/testkit"
)

// deploymentShapes are the pages of docs/deployments and the example each
// shows whole, with what the example must turn on.
var deploymentShapes = []struct {
	page, example string
	mas, rtc      bool
	routes        int
	hosts         []string // certificate names the example must get
}{
	{"synapse-mas.md", "synapse-mas.yaml", true, false, 0,
		[]string{"matrix.example.org", "example.org", "auth.example.org"}},
	{"element-call.md", "synapse-mas-element-call.yaml", true, true, 0,
		[]string{"matrix.example.org", "example.org", "auth.example.org"}},
	{"element-web.md", "full-deployment.yaml", true, true, 2,
		[]string{"matrix.example.org", "example.org", "auth.example.org", "element.example.org"}},
}

const deploymentsDir = "../docs/deployments"

// yamlBlock is a ```yaml block of a page that names an example on its first
// line: "# deploy/examples/X.yaml", or "# deploy/examples/X.yaml (excerpt)".
type yamlBlock struct {
	line    int // of the opening fence, 1-based
	example string
	excerpt bool
	body    string // the lines after the marker, each ending in "\n"
}

var exampleMarker = regexp.MustCompile(`^# deploy/examples/([a-z0-9-]+\.yaml)( \(excerpt\))?$`)

// exampleBlocks returns the yaml blocks of page that name an example.
func exampleBlocks(t *testing.T, page string) []yamlBlock {
	t.Helper()
	lines := strings.SplitAfter(string(read(t, page)), "\n")
	var out []yamlBlock
	for i := 0; i < len(lines); i++ {
		if strings.TrimRight(lines[i], "\n") != "```yaml" || i+1 >= len(lines) {
			continue
		}
		m := exampleMarker.FindStringSubmatch(strings.TrimRight(lines[i+1], "\n"))
		j := i + 1
		for j < len(lines) && strings.TrimRight(lines[j], "\n") != "```" {
			j++
		}
		if j == len(lines) {
			t.Fatalf("%s:%d: yaml block never closed", page, i+1)
		}
		if m != nil {
			out = append(out, yamlBlock{line: i + 1, example: m[1], excerpt: m[2] != "", body: strings.Join(lines[i+2:j], "")})
		}
		i = j
	}
	return out
}

// isRunOf reports whether block is a run of whole lines of file.
func isRunOf(block, file string) bool {
	if block == "" {
		return false
	}
	return strings.HasPrefix(file, block) || strings.Contains(file, "\n"+block)
}

func TestDeploymentPagesMatchExamples(t *testing.T) {
	// The checks below must be able to fail.
	if isRunOf("a: 1\n", "ba: 1\n") || isRunOf("b\n", "a\nb") || !isRunOf("b\nc\n", "a\nb\nc\n") {
		t.Fatal("isRunOf is broken: the checks would prove nothing")
	}
	for _, s := range deploymentShapes {
		page := filepath.Join(deploymentsDir, s.page)
		blocks := exampleBlocks(t, page)
		whole := false
		for _, b := range blocks {
			file, err := os.ReadFile(filepath.Join("examples", b.example))
			if err != nil {
				t.Errorf("%s:%d: names %s, which is not an example: %v", page, b.line, b.example, err)
				continue
			}
			switch {
			case b.excerpt && !isRunOf(b.body, string(file)):
				t.Errorf("%s:%d: the excerpt of %s is not a run of its lines:\n%s", page, b.line, b.example, b.body)
			case !b.excerpt && b.body != string(file):
				t.Errorf("%s:%d: the block differs from deploy/examples/%s: copy the file whole (or mark the block (excerpt))", page, b.line, b.example)
			case !b.excerpt && b.example == s.example:
				whole = true
			}
		}
		if !whole {
			t.Errorf("%s: deploy/examples/%s does not appear whole (a ```yaml block starting \"# deploy/examples/%s\")", page, s.example, s.example)
		}
	}
}

func TestDeploymentExamplesShape(t *testing.T) {
	var prev []string
	for _, s := range deploymentShapes {
		path := filepath.Join("examples", s.example)
		data := read(t, path)
		cfg, err := config.Load(config.LoadOptions{Path: testkit.TempFile(t, s.example, string(data))})
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if got := cfg.MASEnabled(); got != s.mas {
			t.Errorf("%s: MAS on = %v, want %v", path, got, s.mas)
		}
		if s.mas && !cfg.MASCompatLogin() {
			t.Errorf("%s: compat login off, want on (the page's routing table sends /login to MAS)", path)
		}
		if got := cfg.RTCEnabled(); got != s.rtc {
			t.Errorf("%s: MatrixRTC on = %v, want %v", path, got, s.rtc)
		}
		if s.rtc {
			if got, want := cfg.RTCServiceURL(), "https://matrix.example.org/livekit/jwt"; got != want {
				t.Errorf("%s: livekit_service_url %q, want %q", path, got, want)
			}
			// Element Call's self_hosting.md sets these in Synapse; the edge
			// must not be stricter.
			rl := cfg.RateLimits
			if rl.RCMessage.PerSecond < 0.5 || rl.RCMessage.BurstCount < 30 {
				t.Errorf("%s: rc_message %v/%v, want at least 0.5/30", path, rl.RCMessage.PerSecond, rl.RCMessage.BurstCount)
			}
			if rl.RCDelayedEventMgmt.PerSecond < 1 || rl.RCDelayedEventMgmt.BurstCount < 20 {
				t.Errorf("%s: rc_delayed_event_mgmt %v/%v, want at least 1/20", path, rl.RCDelayedEventMgmt.PerSecond, rl.RCDelayedEventMgmt.BurstCount)
			}
		}
		if got := len(cfg.EdgeRoutes()); got != s.routes {
			t.Errorf("%s: %d routes, want %d", path, got, s.routes)
		}
		if got := cfg.TLSDomains(); !slices.Equal(got, s.hosts) {
			t.Errorf("%s: certificate names %v, want %v", path, got, s.hosts)
		}
		// Each example builds on the one before: its settings are all there,
		// in order, so a diff shows only what the next shape adds.
		lines := settingLines(string(data))
		if !isSubsequence(prev, lines) {
			t.Errorf("%s: does not keep every setting of the previous example in order", path)
		}
		prev = lines
	}
}

// settingLines returns the lines of a YAML file that are not blank or
// comments.
func settingLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
			out = append(out, l)
		}
	}
	return out
}

func isSubsequence(sub, of []string) bool {
	i := 0
	for _, l := range of {
		if i < len(sub) && l == sub[i] {
			i++
		}
	}
	return i == len(sub)
}

var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// anchor is GitHub's id for a heading: lower case, punctuation dropped
// (letters, digits, '-' and '_' kept), spaces as '-'.
func anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// headings returns the anchors of a markdown file's headings (outside code
// blocks), numbered as GitHub numbers repeats (x, x-1, …).
func headings(t *testing.T, path string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	fence := false
	for _, l := range strings.Split(string(read(t, path)), "\n") {
		if strings.HasPrefix(l, "```") {
			fence = !fence
			continue
		}
		if fence || !strings.HasPrefix(l, "#") {
			continue
		}
		h := strings.TrimSpace(strings.TrimLeft(l, "#"))
		a := anchor(h)
		for n, base := 1, a; out[a]; n++ {
			a = base + "-" + strconv.Itoa(n)
		}
		out[a] = true
	}
	return out
}

// checkLinks checks every relative link of a markdown file: the file exists
// and, with a #fragment into markdown, the heading too. Links inside code
// blocks are not links.
func checkLinks(t *testing.T, page string) int {
	t.Helper()
	n := 0
	fence := false
	for i, l := range strings.Split(string(read(t, page)), "\n") {
		if strings.HasPrefix(l, "```") {
			fence = !fence
			continue
		}
		if fence {
			continue
		}
		for _, m := range mdLink.FindAllStringSubmatch(l, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			n++
			file, frag, _ := strings.Cut(target, "#")
			path := page
			if file != "" {
				path = filepath.Join(filepath.Dir(page), file)
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s:%d: link %q: %v", page, i+1, target, err)
				continue
			}
			if frag != "" && strings.HasSuffix(path, ".md") && !headings(t, path)[frag] {
				t.Errorf("%s:%d: link %q: %s has no heading #%s", page, i+1, target, path, frag)
			}
		}
	}
	return n
}

func TestDeploymentPageLinks(t *testing.T) {
	if got := anchor("Known failures: MAS#1941, `compat_login` & co."); got != "known-failures-mas1941-compat_login--co" {
		t.Fatalf("anchor: got %q", got)
	}
	pages, err := filepath.Glob(filepath.Join(deploymentsDir, "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"README.md"}
	for _, s := range deploymentShapes {
		want = append(want, s.page)
	}
	for _, w := range want {
		if !slices.Contains(pages, filepath.Join(deploymentsDir, w)) {
			t.Errorf("docs/deployments/%s is missing", w)
		}
	}
	for _, p := range pages {
		if checkLinks(t, p) == 0 {
			t.Errorf("%s: no relative links: the index and the pages link each other", p)
		}
	}
	// The index links every page and example; the project's other docs link
	// the index.
	index := string(read(t, filepath.Join(deploymentsDir, "README.md")))
	for _, s := range deploymentShapes {
		for _, l := range []string{"](" + s.page + ")", "](../../deploy/examples/" + s.example + ")"} {
			if !strings.Contains(index, l) {
				t.Errorf("docs/deployments/README.md: no link %q", l)
			}
		}
	}
	for file, link := range map[string]string{
		"../README.md":      "](docs/deployments/README.md)",
		"../docs/DEPLOY.md": "](deployments/README.md)",
		"../docs/CONFIG.md": "](deployments/README.md)",
	} {
		if !strings.Contains(string(read(t, file)), link) {
			t.Errorf("%s: no link %q", file, link)
		}
	}
}
