package config

// TLS selects how mxedge obtains certificates. Owned by the certs work (issue 3).
type TLS struct {
	// Mode is acme, files or off (default off: plain HTTP on listen.http only).
	Mode string `yaml:"mode"`
	// Domains are the names to serve. Default: host of public_baseurl + server_name.
	Domains []string `yaml:"domains"`
	// Email is the ACME account contact.
	Email string `yaml:"email"`
	// ACMECA is the ACME directory URL. Default Let's Encrypt production.
	ACMECA string `yaml:"acme_ca"`
	// ACMECARoot is a PEM file to trust for a private ACME CA (step-ca, Pebble).
	ACMECARoot string `yaml:"acme_ca_root"`
	// Challenges are the enabled ACME challenges. Default [http-01, tls-alpn-01].
	Challenges []string `yaml:"challenges"`
	// Storage is a directory for certmagic's file storage, or redis://host:port/db. Default /var/lib/mxedge.
	Storage string `yaml:"storage"`
	// CertFile is the PEM chain (mode files).
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM key (mode files).
	KeyFile string `yaml:"key_file"`
	// HSTS is the Strict-Transport-Security max-age in seconds; 0 = no header. Default 31536000.
	HSTS int `yaml:"hsts"`
	// RenewCheckInterval is how often managed certificates are checked. Default 10m.
	RenewCheckInterval Duration `yaml:"renew_check_interval"`
}

// validateTLS checks the tls section (and fills its defaults' derived forms).
func (c *Config) validateTLS(p *problems) {}
