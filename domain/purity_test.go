package domain_test

import (
	"go/build"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDomainIsPure: domain and its subpackages import the standard
// library's pure parts, uuid and the module's own pure packages only: no
// context, no IO, no NATS, pgx, chi or watermill. The rules live here; the
// use cases that do IO sit beside it in ledger.
func TestDomainIsPure(t *testing.T) {
	forbidden := []string{"context", "net", "os", "io/fs", "database/sql", "syscall", "log", "log/slog", "time/tzdata"}
	allowedOutside := []string{"github.com/google/uuid", "github.com/checkin-ledger/ledger/domain", "github.com/checkin-ledger/ledger/internal/jsonscan",
		"golang.org/x/text/unicode/norm"}
	checked := 0
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		pkg, err := build.ImportDir(path, 0)
		if _, ok := err.(*build.NoGoError); ok {
			return nil
		}
		if err != nil {
			return err
		}
		checked++
		for _, imp := range pkg.Imports {
			for _, f := range forbidden {
				if imp == f || strings.HasPrefix(imp, f+"/") {
					t.Errorf("%s imports %s: domain does no IO", path, imp)
				}
			}
			if strings.Contains(strings.SplitN(imp, "/", 2)[0], ".") {
				ok := false
				for _, a := range allowedOutside {
					ok = ok || imp == a || strings.HasPrefix(imp, a+"/")
				}
				if !ok {
					t.Errorf("%s imports %s: domain imports uuid and its own packages only", path, imp)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 3 {
		t.Fatalf("checked %d packages", checked)
	}
}
