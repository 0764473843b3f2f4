package config

import (
	"net/url"
	"strings"

	"go.yaml.in/yaml/v3"
)

// RedactedValue is the placeholder that replaces secrets in Redacted's dump.
const RedactedValue = "REDACTED"

// Redacted returns c as YAML (the effective configuration, every key) with
// secrets replaced by "REDACTED": the value of any key whose name contains
// password, secret, token or credential or ends in _key (key_file excepted:
// a path; a mapping under such a key is judged key by key), and
// the password of any URL (redis://user:pass@host). For `mxedge validate
// --print` and logs. It does not modify c.
func (c *Config) Redacted() string {
	var doc yaml.Node
	if err := doc.Encode(c); err != nil {
		return "# cannot encode configuration: " + err.Error() + "\n"
	}
	redactNode(&doc, false, 0)
	out, err := yaml.Marshal(&doc)
	if err != nil {
		return "# cannot encode configuration: " + err.Error() + "\n"
	}
	return string(out)
}

// secretName reports whether a key names a secret.
func secretName(k string) bool {
	k = strings.ToLower(k)
	if k == "key_file" {
		return false
	}
	for _, s := range []string{"password", "passwd", "secret", "token", "credential"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return strings.HasSuffix(k, "_key") || strings.HasSuffix(k, "apikey") || k == "key"
}

func redactNode(n *yaml.Node, secret bool, depth int) {
	if depth > maxDecodeDepth {
		return
	}
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, e := range n.Content {
			redactNode(e, secret, depth+1)
		}
	case yaml.MappingNode:
		// A secret-named key hides its scalar value (or list of scalars);
		// inside a mapping each key is judged by its own name.
		for i := 0; i+1 < len(n.Content); i += 2 {
			redactNode(n.Content[i+1], secretName(n.Content[i].Value), depth+1)
		}
	case yaml.ScalarNode:
		switch {
		case secret && n.Value != "" && n.ShortTag() != "!!null":
			n.Value, n.Tag, n.Style = RedactedValue, "!!str", 0
		case n.ShortTag() == "!!str" && strings.Contains(n.Value, "@") && strings.Contains(n.Value, "://"):
			n.Value = redactURL(n.Value)
		}
	}
}

// redactURL replaces the password of a URL's user info.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		// Unparseable but URL-like: hide everything between :// and @.
		i := strings.Index(s, "://")
		j := strings.LastIndex(s, "@")
		if i >= 0 && j > i {
			return s[:i+3] + RedactedValue + s[j:]
		}
		return s
	}
	if u.User == nil {
		return s
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), RedactedValue)
		return u.String()
	}
	return s
}
