package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// makeCert writes a self-signed ECDSA P-256 certificate for bench.local and 127.0.0.1
// (cert.pem, key.pem and, for HAProxy, combined.pem) into the temp prefix.
func (e *env) makeCert() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "bench.local"},
		DNSNames:              []string{"bench.local", "localhost"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(48 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	c := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	k := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})
	e.cert = filepath.Join(e.root, "cert.pem")
	e.key = filepath.Join(e.root, "key.pem")
	e.combined = filepath.Join(e.root, "combined.pem")
	if err := os.WriteFile(e.cert, c, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(e.key, k, 0o644); err != nil {
		return err
	}
	return os.WriteFile(e.combined, append(append([]byte{}, c...), k...), 0o644)
}
