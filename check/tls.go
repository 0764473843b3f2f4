package check

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"
)

// minDaysLeft is the remaining validity under which a certificate fails the
// expiry check: ACME clients renew at 30 days (certmagic at a third of the
// lifetime), so less than 14 means renewal has been failing for two weeks.
const minDaysLeft = 14

// tlsChecks inspects the certificate served on e: chain, names, days left.
func (c *checker) tlsChecks(ctx context.Context, rep *Report, e endpoint) {
	idChain, idNames, idExpiry := "tls_chain:"+e.String(), "tls_names:"+e.String(), "tls_expiry:"+e.String()
	nChain, nNames, nExpiry := "TLS chain "+e.String(), "TLS names "+e.String(), "TLS expiry "+e.String()
	ctx, cancel := context.WithTimeout(ctx, c.o.timeout)
	defer cancel()
	d := tls.Dialer{NetDialer: c.dialer, Config: &tls.Config{
		ServerName:         e.host,
		InsecureSkipVerify: true, // verified below, so that each problem gets its own message
		NextProtos:         []string{"h2", "http/1.1"},
	}}
	// Dial through the --resolve map.
	addr := e.String()
	if a, ok := c.o.resolve[strings.ToLower(addr)]; ok {
		addr = a
	}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		detail, fix := describeErr(err, e.String())
		rep.add(Result{ID: idChain, Name: nChain, Status: Fail, Detail: "TLS handshake: " + detail, Fix: fix})
		rep.add(Result{ID: idNames, Name: nNames, Status: Skip, Detail: "skipped: no handshake"})
		rep.add(Result{ID: idExpiry, Name: nExpiry, Status: Skip, Detail: "skipped: no handshake"})
		return
	}
	state := conn.(*tls.Conn).ConnectionState()
	conn.Close()
	certs := state.PeerCertificates
	leaf := certs[0]
	now := c.o.now()

	inter := x509.NewCertPool()
	for _, ic := range certs[1:] {
		inter.AddCert(ic)
	}
	_, verr := leaf.Verify(x509.VerifyOptions{Roots: c.roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	switch {
	case verr == nil:
		rep.add(Result{ID: idChain, Name: nChain, Status: Pass,
			Detail: fmt.Sprintf("trusted chain of %d certificate(s), issued by %s", len(certs), issuerName(leaf))})
	case errors.As(verr, &unknown):
		rep.add(Result{ID: idChain, Name: nChain, Status: Fail,
			Detail: fmt.Sprintf("chain of %d certificate(s) issued by %s does not lead to a trusted root", len(certs), issuerName(leaf)),
			Fix:    "serve the full chain (leaf and intermediates, e.g. fullchain.pem) from a public CA, or pass --ca-file for a private CA"})
	case errors.As(verr, &invalid) && invalid.Reason == x509.Expired:
		rep.add(Result{ID: idChain, Name: nChain, Status: Fail,
			Detail: fmt.Sprintf("a certificate of the chain is outside its validity: %v", verr),
			Fix:    "renew the certificate now (mxedge with tls.mode: acme renews by itself: check its logs for ACME errors)"})
	default:
		rep.add(Result{ID: idChain, Name: nChain, Status: Fail, Detail: verr.Error(),
			Fix: "serve a certificate for TLS server authentication from a trusted CA"})
	}

	if err := leaf.VerifyHostname(e.host); err != nil {
		rep.add(Result{ID: idNames, Name: nNames, Status: Fail,
			Detail: fmt.Sprintf("certificate names (%s) do not cover %s", strings.Join(leaf.DNSNames, ", "), e.host),
			Fix:    "add " + e.host + " to the certificate (mxedge: tls.domains)"})
	} else {
		rep.add(Result{ID: idNames, Name: nNames, Status: Pass,
			Detail: fmt.Sprintf("%s is covered (%s)", e.host, strings.Join(leaf.DNSNames, ", "))})
	}

	left := leaf.NotAfter.Sub(now)
	days := int(left / (24 * time.Hour))
	until := leaf.NotAfter.UTC().Format("2006-01-02")
	switch {
	case left <= 0:
		rep.add(Result{ID: idExpiry, Name: nExpiry, Status: Fail,
			Detail: "expired on " + until,
			Fix:    "renew the certificate now (mxedge with tls.mode: acme renews by itself: check its logs and mxedge_tls_acme_failures_total)"})
	case days < minDaysLeft:
		rep.add(Result{ID: idExpiry, Name: nExpiry, Status: Fail,
			Detail: fmt.Sprintf("%d days left (until %s), fewer than %d", days, until, minDaysLeft),
			Fix:    "renewal is overdue: check the ACME logs and mxedge_tls_acme_failures_total, or replace the certificate files"})
	default:
		rep.add(Result{ID: idExpiry, Name: nExpiry, Status: Pass, Detail: fmt.Sprintf("%d days left (until %s)", days, until)})
	}
}

func issuerName(c *x509.Certificate) string {
	if c.Issuer.CommonName != "" {
		return c.Issuer.CommonName
	}
	return c.Issuer.String()
}
