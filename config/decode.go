package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxDecodeDepth bounds the nesting the decoder follows (aliases included);
// maxDecodeSteps bounds the values it visits, so that aliases and merge keys
// cannot make a small file expand without end.
const (
	maxDecodeDepth = 64
	maxDecodeSteps = 20000
)

// decoder walks a YAML node tree over a Config, reporting into p.
type decoder struct {
	p      *problems
	budget int
	fields map[reflect.Type]map[string][]int // yamlFields cache
}

// step spends one unit of the budget; false (reported once) when spent.
func (d *decoder) step() bool {
	if d.budget <= 0 {
		return false
	}
	d.budget--
	if d.budget == 0 {
		d.p.addDecode("", 0, "too complex: aliases or merge keys expand beyond %d values", maxDecodeSteps)
		return false
	}
	return true
}

// decodeFile decodes YAML data over c strictly: every key must name a field,
// every value must fit its field's type. It records the line of every key in
// p.lines and every mistake in p, and keeps going after a mistake so that
// all of them are reported at once. Keys absent from data keep c's values.
func decodeFile(data []byte, c *Config, p *problems) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if !errors.Is(err, io.EOF) {
			syntaxProblem(p, err)
		}
		return
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		p.addDecode("", extra.Line, "holds more than one YAML document; mxedge reads one")
		return
	} else if !errors.Is(err, io.EOF) {
		syntaxProblem(p, err)
		return
	}
	if len(doc.Content) == 0 {
		return
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return // a file of comments only, or "~"
	}
	collectLines(root, "", p.lines, 0)
	d := &decoder{p: p, budget: maxDecodeSteps, fields: map[reflect.Type]map[string][]int{}}
	d.decodeValue(root, reflect.ValueOf(c).Elem(), "", 0)
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func syntaxProblem(p *problems, err error) {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		p.addDecode("", n, "invalid YAML: %s", m[2])
		return
	}
	p.addDecode("", 0, "invalid YAML: %s", strings.TrimPrefix(msg, "yaml: "))
}

// joinKey appends a mapping key to a dotted prefix.
func joinKey(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}

// collectLines records the line of every mapping key and list item under n,
// as "a.b.c" and "a.list[2]". Aliases are not followed: lines are those of
// the text as written. The first occurrence of a duplicate key wins.
func collectLines(n *yaml.Node, prefix string, lines map[string]int, depth int) {
	if depth > maxDecodeDepth {
		return
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode || k.Value == "<<" {
				continue
			}
			full := joinKey(prefix, k.Value)
			if _, ok := lines[full]; !ok {
				lines[full] = k.Line
			}
			collectLines(v, full, lines, depth+1)
		}
	case yaml.SequenceNode:
		for i, e := range n.Content {
			full := prefix + "[" + strconv.Itoa(i) + "]"
			if _, ok := lines[full]; !ok {
				lines[full] = e.Line
			}
			collectLines(e, full, lines, depth+1)
		}
	}
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// decodeValue decodes n into v (addressable) and reports mistakes under key.
func (d *decoder) decodeValue(n *yaml.Node, v reflect.Value, key string, depth int) {
	p := d.p
	if !d.step() {
		return
	}
	if depth > maxDecodeDepth {
		p.addDecode(key, n.Line, "nested too deeply")
		return
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			p.addDecode(key, n.Line, "unknown alias")
			return
		}
		d.decodeValue(n.Alias, v, key, depth+1)
		return
	}
	isNull := n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
	if reflect.PointerTo(v.Type()).Implements(unmarshalerType) {
		if isNull {
			return // absent value: keep the default
		}
		if err := n.Decode(v.Addr().Interface()); err != nil {
			p.addDecode(key, n.Line, "%s", cleanYAMLError(err))
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		if isNull {
			return
		}
		d.decodeStruct(n, v, key, depth)
	case reflect.Slice:
		if isNull {
			v.SetZero()
			return
		}
		if n.Kind != yaml.SequenceNode {
			p.addDecode(key, n.Line, "must be a list, got %s", describeNode(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, e := range n.Content {
			d.decodeValue(e, s.Index(i), key+"["+strconv.Itoa(i)+"]", depth+1)
		}
		v.Set(s)
	case reflect.Map:
		if isNull {
			v.SetZero()
			return
		}
		if n.Kind != yaml.MappingNode {
			p.addDecode(key, n.Line, "must be a mapping, got %s", describeNode(n))
			return
		}
		d.decodeMap(n, v, key, depth)
	case reflect.Pointer:
		if isNull {
			v.SetZero()
			return
		}
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decodeValue(n, v.Elem(), key, depth+1) // over the default, as for structs
	case reflect.Interface:
		var out any
		if err := n.Decode(&out); err != nil {
			p.addDecode(key, n.Line, "%s", cleanYAMLError(err))
			return
		}
		if out == nil {
			v.SetZero()
		} else {
			v.Set(reflect.ValueOf(out))
		}
	default: // string, bool, numbers
		if isNull {
			return
		}
		if n.Kind != yaml.ScalarNode {
			p.addDecode(key, n.Line, "must be %s, got %s", yamlTypeName(v.Type()), describeNode(n))
			return
		}
		tmp := reflect.New(v.Type())
		if err := n.Decode(tmp.Interface()); err != nil {
			p.addDecode(key, n.Line, "must be %s, got %s", yamlTypeName(v.Type()), describeNode(n))
			return
		}
		v.Set(tmp.Elem())
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, key string, depth int) {
	p := d.p
	if n.Kind != yaml.MappingNode {
		what := "a mapping"
		if key == "" {
			what = "a mapping of keys (server_name: …)"
		}
		p.addDecode(key, n.Line, "must be %s, got %s", what, describeNode(n))
		return
	}
	fields, ok := d.fields[v.Type()]
	if !ok {
		fields = yamlFields(v.Type())
		d.fields[v.Type()] = fields
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		if kn.Kind == yaml.AliasNode && kn.Alias != nil {
			kn = kn.Alias
		}
		if kn.Kind != yaml.ScalarNode {
			p.addDecode(key, kn.Line, "keys must be plain names, got %s", describeNode(kn))
			continue
		}
		name := kn.Value
		if name == "<<" && kn.ShortTag() == "!!merge" {
			d.decodeMerge(vn, v, key, depth)
			continue
		}
		full := joinKey(key, name)
		if first, dup := seen[name]; dup {
			p.addDecode(full, kn.Line, "duplicate key (first set on line %d)", first)
			continue
		}
		seen[name] = kn.Line
		idx, ok := fields[name]
		if !ok {
			p.addDecode(full, kn.Line, "unknown key%s", suggestKey(name, fields))
			continue
		}
		d.decodeValue(vn, v.FieldByIndex(idx), full, depth+1)
	}
}

// decodeMerge applies a YAML merge key ("<<: *base" or "<<: [*a, *b]").
func (d *decoder) decodeMerge(n *yaml.Node, v reflect.Value, key string, depth int) {
	p := d.p
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if depth > maxDecodeDepth || !d.step() {
		return
	}
	switch n.Kind {
	case yaml.MappingNode:
		d.decodeStruct(n, v, key, depth+1)
		return
	case yaml.SequenceNode:
		for _, e := range n.Content {
			if e.Kind == yaml.AliasNode && e.Alias != nil {
				e = e.Alias
			}
			if e.Kind != yaml.MappingNode {
				p.addDecode(key, e.Line, "merge key (<<) must refer to mappings")
				continue
			}
			d.decodeStruct(e, v, key, depth+1)
		}
		return
	}
	p.addDecode(key, n.Line, "merge key (<<) must refer to a mapping")
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, key string, depth int) {
	p := d.p
	t := v.Type()
	if t.Key().Kind() != reflect.String || t.Elem().Kind() == reflect.Interface {
		// Free-form documents (well_known.client, well_known.support): let
		// the YAML library build them; their owners validate the content.
		tmp := reflect.New(t)
		if err := n.Decode(tmp.Interface()); err != nil {
			p.addDecode(key, n.Line, "%s", cleanYAMLError(err))
			return
		}
		v.Set(tmp.Elem())
		return
	}
	m := reflect.MakeMapWithSize(t, len(n.Content)/2)
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		if kn.Kind != yaml.ScalarNode {
			p.addDecode(key, kn.Line, "keys must be plain names, got %s", describeNode(kn))
			continue
		}
		full := joinKey(key, kn.Value)
		if first, dup := seen[kn.Value]; dup {
			p.addDecode(full, kn.Line, "duplicate key (first set on line %d)", first)
			continue
		}
		seen[kn.Value] = kn.Line
		e := reflect.New(t.Elem()).Elem()
		d.decodeValue(vn, e, full, depth+1)
		m.SetMapIndex(reflect.ValueOf(kn.Value).Convert(t.Key()), e)
	}
	v.Set(m)
}

// yamlFields maps the YAML names of t's exported fields to their index.
// Inline (",inline") struct fields contribute their own fields.
func yamlFields(t reflect.Type) map[string][]int {
	out := map[string][]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(","+opts+",", ",inline,") && f.Type.Kind() == reflect.Struct {
			for k, idx := range yamlFields(f.Type) {
				out[k] = append([]int{i}, idx...)
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = []int{i}
	}
	return out
}

// suggestKey returns " (did you mean "x"?)" for a near miss, else the list of
// valid keys.
func suggestKey(name string, fields map[string][]int) string {
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	slices.Sort(names)
	best, bestD := "", 3
	for _, k := range names {
		if d := editDistance(strings.ToLower(name), k); d < bestD {
			best, bestD = k, d
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return " (valid: " + strings.Join(names, ", ") + ")"
}

// editDistance is the Levenshtein distance, treating '-' as '_'.
func editDistance(a, b string) int {
	a = strings.ReplaceAll(a, "-", "_")
	if len(a) > 64 || len(b) > 64 {
		if a == b {
			return 0
		}
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// describeNode names what a node holds, for "got …" in messages.
func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	v := n.Value
	if len(v) > 40 {
		v = v[:40] + "…"
	}
	return strconv.Quote(v)
}

// yamlTypeName names a Go type in YAML words.
func yamlTypeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "a " + t.Kind().String()
}

var yamlErrLineRE = regexp.MustCompile(`^(yaml: )?(unmarshal errors:\s*)?(line \d+: )?`)

// cleanYAMLError strips the library's "yaml: unmarshal errors: line N:"
// prefixes: the problem carries the line itself.
func cleanYAMLError(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		parts := make([]string, len(te.Errors))
		for i, e := range te.Errors {
			parts[i] = yamlErrLineRE.ReplaceAllString(e, "")
		}
		return strings.Join(parts, "; ")
	}
	return yamlErrLineRE.ReplaceAllString(err.Error(), "")
}
