// Package secrets holds the check-in ledger's keys: one root secret
// (LEDGER_TOKEN_KEY, a --key-file outside the data dir, or the data dir's
// ledger.key for the embedded default) and the keys derived from it.
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
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KeyFile is the root secret's file name inside the data dir.
const KeyFile = "ledger.key"

// logDir is where the embedded server keeps the log inside the data dir
// (eventstore's JetStream storage).
const logDir = "jetstream"

// Keys are the keys the service derives from one root secret.
type Keys struct {
	Token  []byte // signs bearer tokens, personal codes and venue codes
	IDHash []byte // keys the ID-document hash
	Master []byte // wraps each person's data key in the keyring
}

// EnvKey is the environment variable that may hold the root secret (at
// least 32 characters): every replica of a cluster is given the same.
const EnvKey = "LEDGER_TOKEN_KEY"

// Source says where the root secret may come from, in this order: the
// environment (EnvKey), a key file outside the data dir (KeyFile, the
// `--key-file` flag; refused when its group or others have any access),
// or the data dir's own KeyFile, created on first start when Create is
// set. Setting both the environment and KeyFile is refused: one deployment
// has one root secret. With External set (the log lives on a
// shared NATS, `--nats-url`) the data dir's key is refused: each replica
// would make its own, and a copy of the data dir (a backup) would carry the
// key that unseals everything beside the data it protects.
type Source struct {
	DataDir string
	KeyFile string
	Getenv  func(string) string
	Create  bool
	// External: the log is not in the data dir (a shared NATS cluster).
	External bool
}

// Flags are the --data and --key-file flags of a command that needs the
// root key of a ledger it does not run (token issue, loadgen).
type Flags struct{ DataDir, KeyFile string }

// Register adds --data and --key-file to fs.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.DataDir, "data", "./data", "the ledger's data dir, holding its root key (without --key-file or LEDGER_TOKEN_KEY)")
	fs.StringVar(&f.KeyFile, "key-file", "", "the root key's file outside the data dir, readable by its owner only (as `ledger serve --key-file`)")
}

// Load returns the keys derived from the root secret named by the flags or
// the environment (getenv); it never creates one.
func (f Flags) Load(getenv func(string) string) (Keys, error) {
	return Load(Source{DataDir: f.DataDir, KeyFile: f.KeyFile, Getenv: getenv})
}

// Load returns the keys derived from the root secret src names.
func Load(src Source) (Keys, error) {
	root, err := src.rootSecret()
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

func (src Source) rootSecret() ([]byte, error) {
	getenv := src.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	env := strings.TrimSpace(getenv(EnvKey))
	switch {
	case env != "" && src.KeyFile != "":
		return nil, fmt.Errorf("both %s and --key-file %s name a root key: give one", EnvKey, src.KeyFile)
	case env != "":
		if len(env) < 32 {
			return nil, fmt.Errorf("%s must have at least 32 characters", EnvKey)
		}
		return []byte(env), nil
	case src.KeyFile != "" && src.External && within(src.DataDir, src.KeyFile):
		return nil, fmt.Errorf("with --nats-url the root key must live outside the data dir, and --key-file %s is inside %s: move it out (it would travel with every copy of the dir)", src.KeyFile, src.DataDir)
	case src.KeyFile != "":
		return readKeyFile(src.KeyFile, "--key-file", fmt.Sprintf("no root key: --key-file %s does not exist (create it once, e.g. `umask 077; openssl rand -hex 32 > %s`, and give every replica the same)", src.KeyFile, src.KeyFile))
	case src.External:
		return nil, fmt.Errorf("with --nats-url (a shared NATS) the root key must come from --key-file PATH or %s, the same on every replica, not from the data dir (%s): a key there is made per replica and travels with every copy of the dir", EnvKey, filepath.Join(src.DataDir, KeyFile))
	}
	return rootSecret(src.DataDir, src.Create)
}

// within reports whether path lies inside dir (symbolic links resolved
// where they exist).
func within(dir, path string) bool {
	resolve := func(p string) string {
		abs, err := filepath.Abs(p)
		if err != nil {
			return p
		}
		if r, err := filepath.EvalSymlinks(abs); err == nil {
			return r
		}
		// A file not there yet: resolve its directory.
		if r, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
			return filepath.Join(r, filepath.Base(abs))
		}
		return abs
	}
	rel, err := filepath.Rel(resolve(dir), resolve(path))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// readKeyFile reads a hex root key of 32 bytes or more from path, a
// regular file (a FIFO would hang the start, a device or directory is no
// key file); missing is the error when it does not exist. A file that its
// group or others may read or write (mode & 0o077) is refused: whoever
// reads the root key can issue an admin token and open every sealed field.
// what names the file in that refusal (--key-file, or the data dir's key).
func readKeyFile(path, what, missing string) ([]byte, error) {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, errors.New(missing)
	case err != nil:
		return nil, fmt.Errorf("root key: %w", err)
	case !st.Mode().IsRegular():
		return nil, fmt.Errorf("root key: %s %s is not a regular file (%s)", what, path, st.Mode().Type())
	case st.Mode().Perm()&0o077 != 0:
		return nil, fmt.Errorf("%s %s has mode %04o: its group or others may read or change the root key; make it its owner's only (`chmod 600 %s`)", what, path, st.Mode().Perm(), path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("root key: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("root key: %w", err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) < 32 {
		return nil, fmt.Errorf("read %s: not a hex key of 32 bytes or more", path)
	}
	return key, nil
}

// rootSecret reads the data dir's key file, creating it when create is set
// and it does not exist yet.
func rootSecret(dataDir string, create bool) ([]byte, error) {
	path := filepath.Join(dataDir, KeyFile)
	missing := fmt.Sprintf("no root key: %s does not exist (start `ledger serve --data %s` once, or give --key-file PATH or %s)", path, dataDir, EnvKey)
	_, err := os.Stat(path)
	switch {
	case err == nil || !errors.Is(err, fs.ErrNotExist):
		return readKeyFile(path, "the data dir's key", missing) // missing: gone since the Stat
	case !create:
		return nil, errors.New(missing)
	}
	// A log already there was written with a root key kept elsewhere: a new
	// one would open nothing in it (no token, no data key, no anchor).
	if _, err := os.Stat(filepath.Join(dataDir, logDir)); err == nil {
		return nil, fmt.Errorf("no root key: %s holds a log but no %s; give the key it was written with (--key-file PATH or %s) instead of making a new one", dataDir, KeyFile, EnvKey)
	}
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
		return rootSecret(dataDir, false)
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
}
