package eventstore_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/checkin-ledger/ledger/eventstore"
)

// TestNamesStayInTheEventStore: no package but eventstore (and cmd, which
// wires) spells a stream or subject name: the others meet the log through
// ports and eventstore's named operations, so renaming a stream or changing
// the subject layout touches this package only. Test files are checked
// too, except this package's own.
func TestNamesStayInTheEventStore(t *testing.T) {
	names := []string{eventstore.StreamName, eventstore.SubjectPrefix, eventstore.KeyBucket, "POISON"}
	fset := token.NewFileSet()
	files := 0
	err := filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := filepath.ToSlash(strings.TrimPrefix(path, ".."+string(filepath.Separator)))
		if d.IsDir() {
			switch rel {
			case "eventstore", "cmd", ".git", "data", "bin", "tmp":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		files++
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err != nil {
				return true
			}
			for _, name := range names {
				if s == name || (name == eventstore.SubjectPrefix && strings.HasPrefix(s, name)) {
					t.Errorf("%s: the string %q names the event store's %q outside eventstore", fset.Position(lit.Pos()), s, name)
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("read only %d files", files)
	}
}
