package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// fileCert is a certificate loaded from tls.cert_file and tls.key_file,
// with the file identities it was loaded from (to notice changes).
type fileCert struct {
	cert     *tls.Certificate // Leaf set
	certFile string
	keyFile  string
	certID   fileID
	keyID    fileID
}

// fileID identifies a version of a file: a renewal tool replacing it (by
// rename or in place) changes one of these.
type fileID struct {
	mod  time.Time
	size int64
	ino  uint64
}

func statID(path string) (fileID, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileID{}, err
	}
	return fileID{mod: fi.ModTime(), size: fi.Size(), ino: inode(fi)}, nil
}

// loadFileCert reads and validates a PEM chain and key: readable, key
// matching the leaf, leaf valid at now, leaf covering every name in domains.
// Errors name the config key at fault.
func loadFileCert(certFile, keyFile string, domains []string, now time.Time) (*fileCert, error) {
	certID, err := statID(certFile)
	if err != nil {
		return nil, fmt.Errorf("tls.cert_file: %w", err)
	}
	keyID, err := statID(keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls.key_file: %w", err)
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("tls.cert_file: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls.key_file: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tls.cert_file %s, tls.key_file %s: %w", certFile, keyFile, explainPairError(err))
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("tls.cert_file %s: %w", certFile, err)
		}
		cert.Leaf = leaf
	}
	if now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("tls.cert_file %s: certificate expired at %s", certFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return nil, fmt.Errorf("tls.cert_file %s: certificate not valid before %s", certFile, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	for _, d := range domains {
		if err := leaf.VerifyHostname(d); err != nil {
			return nil, fmt.Errorf("tls.cert_file %s: certificate does not cover %q (tls.domains); it covers %v", certFile, d, leaf.DNSNames)
		}
	}
	return &fileCert{cert: &cert, certFile: certFile, keyFile: keyFile, certID: certID, keyID: keyID}, nil
}

// explainPairError turns tls.X509KeyPair's messages into ones naming the keys.
func explainPairError(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "private key does not match public key"):
		return errors.New("tls.key_file does not match the certificate in tls.cert_file")
	case strings.Contains(msg, "failed to find any PEM data in certificate input"), strings.Contains(msg, "failed to find certificate PEM data"):
		return errors.New("tls.cert_file holds no PEM certificate")
	case strings.Contains(msg, "failed to find any PEM data in key input"), strings.Contains(msg, "failed to find PEM block with type ending in \"PRIVATE KEY\""):
		return errors.New("tls.key_file holds no PEM private key")
	}
	return err
}

// changed reports whether either file differs from the loaded version.
func (f *fileCert) changed() bool {
	c, err1 := statID(f.certFile)
	k, err2 := statID(f.keyFile)
	if err1 != nil || err2 != nil {
		return true // let the reload report the error
	}
	return c != f.certID || k != f.keyID
}
