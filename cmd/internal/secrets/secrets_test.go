package secrets_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/checkin-ledger/ledger/cmd/internal/secrets"
)

const envKey = "an-environment-root-key-of-32-or-more-characters"

func env(v string) func(string) string {
	return func(k string) string {
		if k == secrets.EnvKey {
			return v
		}
		return ""
	}
}

func writeKey(t *testing.T, path, hexKey string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(hexKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestLoadSources: where the root key may come from, and what is refused
// with a message that says what to do.
func TestLoadSources(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "root.key")
	writeKey(t, outside, strings.Repeat("ab", 32))
	short := filepath.Join(t.TempDir(), "short.key")
	writeKey(t, short, "abcd")
	shared := map[string]string{}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o620, 0o644} {
		path := filepath.Join(t.TempDir(), "shared.key")
		writeKey(t, path, strings.Repeat("ab", 32))
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		shared[fmt.Sprintf("%04o", mode)] = path
	}
	withDirKey := t.TempDir()
	writeKey(t, filepath.Join(withDirKey, secrets.KeyFile), strings.Repeat("cd", 32))
	sharedDir := t.TempDir()
	writeKey(t, filepath.Join(sharedDir, secrets.KeyFile), strings.Repeat("cd", 32))
	if err := os.Chmod(filepath.Join(sharedDir, secrets.KeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(t.TempDir(), "fifo.key")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "dir.key")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}

	fromEnv, err := secrets.Load(secrets.Source{DataDir: t.TempDir(), Getenv: env(envKey)})
	if err != nil {
		t.Fatal(err)
	}
	fromFile, err := secrets.Load(secrets.Source{DataDir: withDirKey, KeyFile: outside})
	if err != nil {
		t.Fatal(err)
	}
	fromDir, err := secrets.Load(secrets.Source{DataDir: withDirKey})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(fromEnv.Master, fromFile.Master) || bytes.Equal(fromFile.Master, fromDir.Master) || bytes.Equal(fromEnv.Token, fromDir.Token) {
		t.Fatal("two sources gave the same keys: the key file outside the data dir was not the one read")
	}
	for _, c := range []struct {
		name string
		src  secrets.Source
		want []byte // the master key; nil: an error naming errWants
		errs []string
	}{
		{"environment", secrets.Source{DataDir: withDirKey, Getenv: env(envKey)}, fromEnv.Master, nil},
		{"key file", secrets.Source{DataDir: withDirKey, KeyFile: outside}, fromFile.Master, nil},
		{"data dir", secrets.Source{DataDir: withDirKey}, fromDir.Master, nil},
		{"shared NATS, key file", secrets.Source{DataDir: withDirKey, KeyFile: outside, External: true}, fromFile.Master, nil},
		{"shared NATS, environment", secrets.Source{DataDir: withDirKey, Getenv: env(envKey), External: true}, fromEnv.Master, nil},
		{"shared NATS, only the data dir's key", secrets.Source{DataDir: withDirKey, External: true}, nil,
			[]string{"--nats-url", "--key-file", secrets.EnvKey, secrets.KeyFile}},
		{"shared NATS, a key file inside the data dir", secrets.Source{DataDir: withDirKey, KeyFile: filepath.Join(withDirKey, secrets.KeyFile), External: true}, nil,
			[]string{"inside", "move it out"}},
		{"shared NATS, a key file inside the data dir by a relative path", secrets.Source{DataDir: withDirKey, KeyFile: filepath.Join(withDirKey, "sub", "..", secrets.KeyFile), External: true}, nil,
			[]string{"inside"}},
		{"embedded, a key file inside the data dir", secrets.Source{DataDir: withDirKey, KeyFile: filepath.Join(withDirKey, secrets.KeyFile)}, fromDir.Master, nil},
		{"shared NATS, nothing", secrets.Source{DataDir: t.TempDir(), External: true, Create: true}, nil, []string{"--key-file", secrets.EnvKey}},
		{"both environment and key file", secrets.Source{DataDir: withDirKey, KeyFile: outside, Getenv: env(envKey)}, nil, []string{"give one"}},
		{"key file missing", secrets.Source{DataDir: withDirKey, KeyFile: outside + ".gone"}, nil, []string{"does not exist", "openssl rand -hex 32"}},
		{"key file readable by its group", secrets.Source{DataDir: withDirKey, KeyFile: shared["0640"]}, nil, []string{shared["0640"], "mode 0640", "chmod 600"}},
		{"key file readable by others", secrets.Source{DataDir: withDirKey, KeyFile: shared["0604"]}, nil, []string{shared["0604"], "mode 0604", "chmod 600"}},
		{"key file writable by its group", secrets.Source{DataDir: withDirKey, KeyFile: shared["0620"]}, nil, []string{"mode 0620", "chmod 600"}},
		{"shared NATS, key file readable by all", secrets.Source{DataDir: withDirKey, KeyFile: shared["0644"], External: true}, nil, []string{"mode 0644", "chmod 600"}},
		{"the data dir's key readable by all", secrets.Source{DataDir: sharedDir}, nil, []string{"data dir's key", "mode 0644", "chmod 600"}},
		{"key file a FIFO (would hang)", secrets.Source{DataDir: withDirKey, KeyFile: fifo}, nil, []string{fifo, "not a regular file"}},
		{"key file a directory", secrets.Source{DataDir: withDirKey, KeyFile: dir}, nil, []string{dir, "not a regular file"}},
		{"key file too short", secrets.Source{DataDir: withDirKey, KeyFile: short}, nil, []string{"32 bytes"}},
		{"environment too short", secrets.Source{DataDir: withDirKey, Getenv: env("short")}, nil, []string{"at least 32"}},
		{"no key, not created", secrets.Source{DataDir: t.TempDir()}, nil, []string{"does not exist", "--key-file"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			k, err := secrets.Load(c.src)
			if c.want != nil {
				if err != nil || !bytes.Equal(k.Master, c.want) {
					t.Fatalf("keys %x, %v; want master %x", k.Master, err, c.want)
				}
				return
			}
			if err == nil {
				t.Fatal("loaded")
			}
			for _, w := range c.errs {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestLoadCreatesTheEmbeddedDefaultsKey: with no flag and no environment
// (make run), the first start creates DATA/ledger.key, readable by its
// owner only, and later starts read the same; a key file given is never
// created.
func TestLoadCreatesTheEmbeddedDefaultsKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	first, err := secrets.Load(secrets.Source{DataDir: dir, Create: true})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, secrets.KeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	again, err := secrets.Load(secrets.Source{DataDir: dir, Create: true})
	if err != nil || !bytes.Equal(first.Master, again.Master) {
		t.Fatalf("second start: %v", err)
	}
	// A data dir that holds a log but no key (moved out to a key file) gets
	// no new key: it would open nothing there.
	moved := t.TempDir()
	if err := os.Mkdir(filepath.Join(moved, "jetstream"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := secrets.Load(secrets.Source{DataDir: moved, Create: true}); err == nil || !strings.Contains(err.Error(), "holds a log") {
		t.Fatalf("a log without its key: %v", err)
	}
	if _, err := os.Stat(filepath.Join(moved, secrets.KeyFile)); err == nil {
		t.Fatal("a new key was made beside a log written with another")
	}
	missing := filepath.Join(t.TempDir(), "root.key")
	if _, err := secrets.Load(secrets.Source{DataDir: t.TempDir(), KeyFile: missing, Create: true}); err == nil {
		t.Fatal("a missing --key-file was accepted")
	}
	if _, err := os.Stat(missing); err == nil {
		t.Fatal("a missing --key-file was created")
	}
}
