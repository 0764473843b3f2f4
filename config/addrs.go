package config

import (
	"errors"
	"net/netip"
	"strings"
)

// parsePrefix parses one entry of a list of client or proxy addresses
// (trusted_proxies, admin_api.allow_from, rate_limits.exempt.addresses): a
// CIDR ("10.0.0.0/8", "2001:db8::/32") or a bare address, which is a
// single-address prefix (/32 or /128). Surrounding spaces are ignored and
// host bits are masked ("10.1.2.3/8" is 10.0.0.0/8). Every list of
// addresses goes through this one function, so an entry means the same
// wherever it is written.
//
// An IPv4-mapped IPv6 address is unmapped: "::ffff:10.0.0.1" is 10.0.0.1/32
// and "::ffff:10.0.0.0/104" is 10.0.0.0/8. mxedge matches every address
// unmapped (the socket peer, X-Forwarded-For and Forwarded entries, the rate
// limiter's client), so the mapped form can only mean the IPv4 address; it
// is also how a dual-stack socket shows an IPv4 peer in logs and in ss,
// which is where an admin copies it from. Kept mapped it would never match;
// refused it would only send the admin to rewrite what is unambiguous. A
// mapped prefix shorter than /96 spans IPv6 addresses too and has no IPv4
// form: it is refused, as is an address with a zone ("fe80::1%eth0"):
// addresses are matched without zones. The error says what is wrong; the
// caller adds the key and the value.
func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	var pre netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if pre, err = netip.ParsePrefix(s); err != nil {
			return netip.Prefix{}, errors.New("not a CIDR (like 10.0.0.0/8 or 2001:db8::/32)")
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, errors.New("not an IP address or CIDR (like 10.0.0.0/8)")
		}
		if a.Zone() != "" {
			return netip.Prefix{}, errors.New("must not have a zone (%…): addresses are matched without zones")
		}
		pre = netip.PrefixFrom(a, a.BitLen())
	}
	if a := pre.Addr(); a.Is4In6() {
		if pre.Bits() < 96 {
			return netip.Prefix{}, errors.New("an IPv4-mapped prefix needs /96 or longer to have an IPv4 form " +
				"(::ffff:10.0.0.0/104 is 10.0.0.0/8); write the IPv4 or the IPv6 CIDR")
		}
		pre = netip.PrefixFrom(a.Unmap(), pre.Bits()-96)
	}
	return pre.Masked(), nil
}

// Prefixes is a parsed list of addresses (trusted_proxies,
// admin_api.allow_from, rate_limits.exempt.addresses). The zero value
// contains nothing.
type Prefixes []netip.Prefix

// Contains reports whether any prefix holds a (matched as is: callers pass
// unmapped addresses without zone, as mxedge reads every client address). An
// invalid address is in no list.
func (ps Prefixes) Contains(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// checkPrefixes parses a list of addresses with parsePrefix, reporting each
// bad entry at key[i]. It returns the prefixes, one per entry, or nil when
// any entry is bad.
func checkPrefixes(p *problems, key string, list []string) Prefixes {
	out := make([]netip.Prefix, 0, len(list))
	ok := true
	for i, s := range list {
		pre, err := parsePrefix(s)
		if err != nil {
			p.add(indexKey(key, i), "%v, got %q", err, s)
			ok = false
			continue
		}
		out = append(out, pre)
	}
	if !ok {
		return nil
	}
	return out
}
