package main

import (
	"fmt"
	"net/http"
	"testing"
)

// TestPassAfterOwnWrites: a pass sent through the replica that has just
// written what it decides on sees it, with either read models: the
// person's registration (else "no registered person"), then their red
// code (else a pass let in on the code before it). With PostgreSQL the
// command side's facts follow the log a few milliseconds behind; from
// outside, on make cluster, about one pass in three sent right after a
// registration was refused (ledger.OwnWrites).
func TestPassAfterOwnWrites(t *testing.T) { onBothReadModels(t, testPassAfterOwnWrites) }

func testPassAfterOwnWrites(t *testing.T, flags []string) {
	dir := t.TempDir()
	s := startServiceWith(t, dir, nil, nil, append([]string{"--register-rate", "0"}, flags...), nil)
	reviewer := issue(t, dir, "--role", "reviewer", "--subject", "wang")
	feed := issue(t, dir, "--role", "health-feed", "--subject", "feed")
	manager := register(t, s.base, "周经理", 59)
	_, venueCode := approvedVenue(t, s.base, manager, reviewer, "沂河超市")
	pass := func(p person, dir string) (int, string, []byte) {
		var ans struct {
			Decision string `json:"decision"`
		}
		code, _, raw := call(t, "POST", s.base+"/v1/passes", p.token,
			map[string]any{"method": "self_scan", "venue_code": venueCode, "direction": dir}, &ans)
		return code, ans.Decision, raw
	}
	for seq := 60; seq < 90; seq++ {
		p := register(t, s.base, fmt.Sprintf("陈%d", seq), seq)
		if code, decision, raw := pass(p, "in"); code != http.StatusCreated || decision != "pass" {
			t.Fatalf("a pass right after the registration of %d: %d %s", seq, code, raw)
		}
		if code, _, raw := call(t, "POST", s.base+"/v1/health-status", feed, map[string]any{"records": []map[string]any{
			{"id_type": "resident_id", "id_number": residentID(seq), "code_colour": "red", "nat_result": "none"},
		}}, nil); code != http.StatusOK {
			t.Fatalf("health record of %d: %d %s", seq, code, raw)
		}
		if code, decision, raw := pass(p, "in"); code != http.StatusCreated || decision != "deny" {
			t.Fatalf("a pass right after a red code of %d: %d %s (want it denied)", seq, code, raw)
		}
	}
}
