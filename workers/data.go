package workers

import (
	_ "embed"
	"fmt"

	"go.yaml.in/yaml/v3"
)

//go:embed synapse.yaml
var synapseYAML []byte

// Table is the routing data of synapse.yaml.
type Table struct {
	// Synapse is the version of docs/workers.md the rules were checked
	// against; Commit its commit.
	Synapse string `yaml:"synapse"`
	Commit  string `yaml:"commit"`
	// Rules are tried in order; the first match whose role is configured wins.
	Rules []Rule `yaml:"rules"`
}

// Rule is one list of endpoints of one role.
type Rule struct {
	Role     string    `yaml:"role"`
	Section  string    `yaml:"section"`
	Methods  []string  `yaml:"methods"`
	By       string    `yaml:"by"`
	Patterns []Pattern `yaml:"patterns"`
}

// Pattern is one endpoint: workers.md's regular expression (empty for
// mxedge's own entries) and the segment pattern mxedge matches.
type Pattern struct {
	Regex string `yaml:"regex"`
	Path  string `yaml:"path"`
	Note  string `yaml:"note"`
}

// Balancing keys (Rule.By).
const (
	ByPool   = ""       // the pool's own balancing
	ByUser   = "user"   // the user behind the access token (Resolver), else the token
	ByRoom   = "room"   // the room ID (or alias) in the path
	ByOrigin = "origin" // the origin server of an X-Matrix Authorization header
	ByOne    = "one"    // always the same member (SSO: one process)
)

// Synapse returns the routing table of synapse.yaml.
func Synapse() (*Table, error) {
	var t Table
	if err := yaml.Unmarshal(synapseYAML, &t); err != nil {
		return nil, fmt.Errorf("workers: synapse.yaml: %w", err)
	}
	return &t, nil
}
