package certs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/mxedge/mxedge/certs/redisstorage"
)

// storageCheckTimeout bounds the write check of the storage at New.
const storageCheckTimeout = 10 * time.Second

// openStorage returns the certmagic storage for tls.storage (a directory or
// a redis:// URL), after checking that a key can be written, read and
// deleted. close releases it.
func openStorage(spec string) (st certmagic.Storage, close func() error, err error) {
	close = func() error { return nil }
	if strings.HasPrefix(spec, "redis://") || strings.HasPrefix(spec, "rediss://") {
		rs, err := redisstorage.New(spec, redisstorage.Options{})
		if err != nil {
			return nil, nil, fmt.Errorf("tls.storage: %w", err)
		}
		st, close = rs, rs.Close
	} else {
		if err := os.MkdirAll(spec, 0o700); err != nil {
			return nil, nil, fmt.Errorf("tls.storage: %w", err)
		}
		st = &certmagic.FileStorage{Path: spec}
	}
	if err := checkStorage(st); err != nil {
		close()
		return nil, nil, fmt.Errorf("tls.storage %s is not usable: %w", redact(spec), err)
	}
	return st, close, nil
}

// checkStorage writes, reads back and deletes a probe key.
func checkStorage(st certmagic.Storage) error {
	ctx, cancel := context.WithTimeout(context.Background(), storageCheckTimeout)
	defer cancel()
	var b [8]byte
	rand.Read(b[:])
	key := "mxedge_write_check_" + hex.EncodeToString(b[:])
	if err := st.Store(ctx, key, b[:]); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	got, err := st.Load(ctx, key)
	if err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	if string(got) != string(b[:]) {
		return fmt.Errorf("read back %d bytes, want the %d written", len(got), len(b))
	}
	if err := st.Delete(ctx, key); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	return nil
}

// redact drops a password from a redis URL for error messages.
func redact(spec string) string {
	i := strings.Index(spec, "://")
	at := strings.LastIndexByte(spec, '@')
	if i < 0 || at < i {
		return spec
	}
	return spec[:i+3] + "xxx@" + spec[at+1:]
}
