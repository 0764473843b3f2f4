package config

import (
	"strconv"
	"strings"
	"testing"

	"github.com/mxedge/mxedge/testkit"
)

// TestAddressListsAgree: an entry is accepted by every list of addresses or
// refused by every one with the same message. trusted_proxies once refused
// "::ffff:10.0.0.1" while rate_limits.exempt.addresses accepted it.
func TestAddressListsAgree(t *testing.T) {
	lists := []struct{ key, yaml string }{
		{"trusted_proxies", "trusted_proxies: [%s]\n"},
		{"admin_api.allow_from", "admin_api:\n  allow_from: [%s]\n"},
		{"rate_limits.exempt.addresses", "rate_limits:\n  exempt: {addresses: [%s]}\n"},
	}
	for _, in := range []string{
		"10.0.0.0/8", "192.0.2.1", "2001:db8::1", "::ffff:10.0.0.1", "::ffff:10.0.0.0/104",
		"::ffff:10.0.0.0/80", "fe80::1%eth0", "10.0.0.0/33", "proxy.local", " 192.0.2.1 ",
	} {
		t.Run(in, func(t *testing.T) {
			outcome := map[string]string{} // key → "accepted" or the problem
			for _, l := range lists {
				p := testkit.TempFile(t, "c.yaml", base+strings.Replace(l.yaml, "%s", strconv.Quote(in), 1))
				_, err := Load(LoadOptions{Path: p})
				outcome[l.key] = "accepted"
				if err != nil {
					var msgs []string
					for _, pr := range problemsOf(t, err) {
						msgs = append(msgs, strings.TrimPrefix(pr.Key, l.key)+": "+pr.Msg)
					}
					outcome[l.key] = strings.Join(msgs, "; ")
				}
			}
			for _, l := range lists[1:] {
				if outcome[l.key] != outcome[lists[0].key] {
					t.Errorf("%s: %s\n%s: %s\nwant the same outcome", lists[0].key, outcome[lists[0].key], l.key, outcome[l.key])
				}
			}
		})
	}
}
