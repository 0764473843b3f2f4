package check

import (
	"fmt"
	"io"
)

// Status is the outcome of one check.
type Status string

// The statuses of a check.
const (
	Pass Status = "pass"
	Fail Status = "fail"
	Skip Status = "skip" // not applicable, or a check it depends on failed
)

// Result is one check's outcome, one line of the report.
type Result struct {
	// ID is stable and machine-readable, e.g. "client_wellknown_cors" or
	// "tls_names:matrix.example.org:443".
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status Status `json:"status"`
	// Detail says what was seen.
	Detail string `json:"detail"`
	// Fix says, in a sentence, how to repair a failure; empty otherwise.
	Fix string `json:"fix,omitempty"`
}

// Report is the whole outcome of a check run (the --json output).
type Report struct {
	Target     string   `json:"target"`
	ServerName string   `json:"server_name"`
	BaseURL    string   `json:"base_url,omitempty"`
	Federation string   `json:"federation,omitempty"` // host:port federation traffic goes to
	Versions   []string `json:"versions,omitempty"`
	Checks     []Result `json:"checks"`
	Passed     int      `json:"passed"`
	Failed     int      `json:"failed"`
	Skipped    int      `json:"skipped"`
}

func (r *Report) add(res Result) {
	switch res.Status {
	case Pass:
		r.Passed++
	case Fail:
		r.Failed++
	default:
		r.Skipped++
	}
	r.Checks = append(r.Checks, res)
}

func (r *Report) writeText(w io.Writer) {
	fmt.Fprintf(w, "mxedge check %s (server name %s)\n", r.Target, r.ServerName)
	for _, c := range r.Checks {
		switch c.Status {
		case Pass:
			fmt.Fprintf(w, "✓ %s: %s\n", c.Name, c.Detail)
		case Fail:
			fmt.Fprintf(w, "✗ %s: %s. Fix: %s\n", c.Name, c.Detail, c.Fix)
		default:
			fmt.Fprintf(w, "- %s: %s\n", c.Name, c.Detail)
		}
	}
	fmt.Fprintf(w, "%d passed, %d failed, %d skipped\n", r.Passed, r.Failed, r.Skipped)
}
