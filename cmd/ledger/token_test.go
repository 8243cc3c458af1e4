package main

import (
	"strings"
	"testing"

	"github.com/google/uuid"
)

// TestTokenIssueRefuses: `token issue` refuses a token expired when issued,
// a flag its role does not use, and a subject holding an ID or phone number
// (the subject is the actor of the holder's audit entries, kept for good);
// it issues the ordinary ones.
func TestTokenIssueRefuses(t *testing.T) {
	venue := uuid.NewString()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--role", "analyst", "--subject", "li", "--ttl", "-1h"}, "--ttl must be positive"},
		{[]string{"--role", "analyst", "--subject", "li", "--ttl", "0s"}, "--ttl must be positive"},
		{[]string{"--role", "admin", "--subject", "root", "--venue", venue}, "--venue is only for --role scanner"},
		{[]string{"--role", "analyst", "--subject", "li", "--person", uuid.NewString()}, "--person is only for --role person"},
		{[]string{"--role", "analyst", "--subject", "11010519491231002X"}, "may not hold an ID or phone number"},
		{[]string{"--role", "auditor", "--subject", "138-0013-8000"}, "may not hold an ID or phone number"},
	} {
		args := append([]string{"token", "issue", "--data", t.TempDir()}, c.args...)
		if _, err := runCmd(nil, args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error with %q", c.args, err, c.want)
		}
	}
	for _, args := range [][]string{
		{"--role", "analyst", "--subject", "li.wei", "--ttl", "1h"},
		{"--role", "scanner", "--subject", "gate-2", "--venue", venue},
		{"--role", "person", "--person", uuid.NewString()},
	} {
		out, err := runCmd(map[string]string{"LEDGER_TOKEN_KEY": strings.Repeat("k", 40)}, append([]string{"token", "issue"}, args...)...)
		if err != nil || strings.Count(out, ".") != 2 {
			t.Errorf("%v: %q, %v; want a token", args, out, err)
		}
	}
}
