// Package secrets holds the check-in ledger's keys: one root secret (the
// data dir's ledger.key, or LEDGER_TOKEN_KEY) and the keys derived from it.
// It is shared by the commands under cmd/ (the service signs tokens with the
// key the load generator signs its test tokens with), and only they may
// import it.
package secrets

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KeyFile is the root secret's file name inside the data dir.
const KeyFile = "ledger.key"

// Keys are the keys the service derives from one root secret.
type Keys struct {
	Token  []byte // signs bearer tokens, personal codes and venue codes
	IDHash []byte // keys the ID-document hash
	Master []byte // wraps each person's data key in the keyring
}

// Load returns the keys derived from the root secret: LEDGER_TOKEN_KEY
// when set (every replica of a cluster must share it), else the data dir's
// key file, created on first start when create is true.
func Load(dataDir string, getenv func(string) string, create bool) (Keys, error) {
	root, err := rootSecret(dataDir, getenv, create)
	if err != nil {
		return Keys{}, err
	}
	derive := func(purpose string) ([]byte, error) {
		return hkdf.Key(sha256.New, root, nil, "checkin-ledger "+purpose, 32)
	}
	var s Keys
	if s.Token, err = derive("token"); err != nil {
		return Keys{}, err
	}
	if s.IDHash, err = derive("id-hash"); err != nil {
		return Keys{}, err
	}
	if s.Master, err = derive("keyring"); err != nil {
		return Keys{}, err
	}
	return s, nil
}

func rootSecret(dataDir string, getenv func(string) string, create bool) ([]byte, error) {
	if v := strings.TrimSpace(getenv("LEDGER_TOKEN_KEY")); v != "" {
		if len(v) < 32 {
			return nil, errors.New("LEDGER_TOKEN_KEY must have at least 32 characters")
		}
		return []byte(v), nil
	}
	path := filepath.Join(dataDir, KeyFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		key, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(key) < 32 {
			return nil, fmt.Errorf("read %s: not a hex key of 32 bytes or more", path)
		}
		return key, nil
	case errors.Is(err, fs.ErrNotExist) && create:
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("create signing key: %w", err)
		}
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return nil, fmt.Errorf("create data dir: %w", err)
		}
		// O_EXCL: two processes starting at once cannot both write a key.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return rootSecret(dataDir, getenv, false)
		}
		if err != nil {
			return nil, fmt.Errorf("create %s: %w", path, err)
		}
		if _, err := f.WriteString(hex.EncodeToString(key) + "\n"); err != nil {
			f.Close()
			return nil, fmt.Errorf("write %s: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("sync %s: %w", path, err)
		}
		return key, f.Close()
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("no signing key: %s does not exist (start `ledger serve --data %s` once, or set LEDGER_TOKEN_KEY)", path, dataDir)
	default:
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
}
