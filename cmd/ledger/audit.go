package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger"
)

// errAuditBroken is auditVerify's error for a chain that does not hold
// (the report says where).
var errAuditBroken = errors.New("audit verify: the audit chain is broken")

// auditVerify is `ledger audit verify`: it checks the audit chain and its
// anchor, either in a store not in use (the data dir, read-only under its
// lock, or an external NATS: --data/--nats-url with the root key, which
// unseals the anchor) or through a running service (--url with an admin's
// or auditor's --token, GET /v1/audit/verify). It prints the report and
// fails (exit 1) on a broken chain, naming the first broken link; an
// anchor that lags the chain is reported, not a failure. --reanchor writes
// the anchor anew over a chain whose entries hold.
func auditVerify(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ef := engineFlags{readOnly: true} // reads the log: changes no stream
	ef.register(fs, getenv)
	url := fs.String("url", "", "verify through the running service at this base URL (GET /v1/audit/verify) instead of opening the store")
	tok := fs.String("token", getenv("LEDGER_TOKEN"), "with --url: an admin's or auditor's bearer token (env LEDGER_TOKEN)")
	timeout := fs.Duration("timeout", 5*time.Minute, "how long the verification may take")
	reanchor := fs.Bool("reanchor", false, "on a store not in use: when every entry holds, write the chain's head as its anchor (the repair once a deleted or altered anchor was looked into)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *reanchor && *url != "" {
		return errors.New("audit verify: --reanchor works on the store (--data or --nats-url), not through --url")
	}
	ef.readOnly = !*reanchor // a reanchor writes the anchor
	if fs.NArg() > 0 {
		return fmt.Errorf("audit verify: unexpected arguments %q", fs.Args())
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	var (
		r   domain.AuditReport
		err error
	)
	if *url != "" {
		r, err = verifyRemote(ctx, strings.TrimRight(*url, "/"), *tok)
	} else {
		r, err = verifyStore(ctx, &ef, stderr, getenv, *reanchor)
	}
	if errors.Is(err, errDataInUse) {
		return fmt.Errorf("audit verify: %w (or verify through the running service: --url URL --token T)", err)
	}
	if err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	printAuditReport(stdout, r)
	if !r.OK() {
		return errAuditBroken
	}
	return nil
}

// verifyStore verifies the chain of the store the flags name, opened
// read-only unless it reanchors (the data dir under its lock: refused while
// a serve holds it).
func verifyStore(ctx context.Context, ef *engineFlags, stderr io.Writer, getenv func(string) string, reanchor bool) (domain.AuditReport, error) {
	es, closeLog, err := ef.openLogForCommand(ctx, stderr, getenv)
	if err != nil {
		return domain.AuditReport{}, err
	}
	defer closeLog()
	l := &ledger.Ledger{Audit: es}
	if reanchor {
		return l.ReanchorAudit(ctx)
	}
	return l.VerifyAudit(ctx)
}

// verifyRemote asks the running service at base to verify its chain.
func verifyRemote(ctx context.Context, base, tok string) (domain.AuditReport, error) {
	if tok == "" {
		return domain.AuditReport{}, errors.New("--url needs an admin's or auditor's --token (or LEDGER_TOKEN)")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/audit/verify", nil)
	if err != nil {
		return domain.AuditReport{}, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return domain.AuditReport{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return domain.AuditReport{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return domain.AuditReport{}, fmt.Errorf("%s answered %s: %s", req.URL, resp.Status, body)
	}
	// GET /v1/audit/verify's answer (http/openapi.yaml AuditReport).
	var a struct {
		OK          bool               `json:"ok"`
		Entries     uint64             `json:"entries"`
		Head        domain.AuditHead   `json:"head"`
		Anchor      *domain.AuditHead  `json:"anchor"`
		AnchorState domain.AnchorState `json:"anchor_state"`
		AnchorLag   uint64             `json:"anchor_lag"`
		Broken      *struct {
			Seq      uint64 `json:"seq"`
			Position uint64 `json:"position"`
			Problem  string `json:"problem"`
		} `json:"broken"`
	}
	if err := json.Unmarshal(body, &a); err != nil {
		return domain.AuditReport{}, fmt.Errorf("%s: not a verification report: %w", req.URL, err)
	}
	r := domain.AuditReport{Entries: a.Entries, Head: a.Head, AnchorState: a.AnchorState, AnchorLag: a.AnchorLag}
	if a.Anchor != nil {
		r.Anchor = *a.Anchor
	}
	if b := a.Broken; b != nil {
		r.Broken = &domain.AuditBreak{Seq: b.Seq, Position: b.Position, Problem: b.Problem}
	} else if !a.OK {
		r.Broken = &domain.AuditBreak{Problem: "the service reports the chain broken without saying where"}
	}
	return r, nil
}

// printAuditReport writes r for a person.
func printAuditReport(w io.Writer, r domain.AuditReport) {
	noun := "entries"
	if r.Entries == 1 {
		noun = "entry"
	}
	fmt.Fprintf(w, "audit chain: %d %s", r.Entries, noun)
	if r.Head.Seq > 0 {
		fmt.Fprintf(w, ", head seq %d hash %s", r.Head.Seq, r.Head.Hash)
	}
	fmt.Fprintln(w)
	switch r.AnchorState {
	case domain.AnchorStored:
		fmt.Fprintf(w, "anchor: seq %d hash %s\n", r.Anchor.Seq, r.Anchor.Hash)
	case domain.AnchorNone:
		fmt.Fprintln(w, "anchor: none written yet")
	default:
		fmt.Fprintf(w, "anchor: %s\n", r.AnchorState)
	}
	switch {
	case r.Broken != nil:
		fmt.Fprintf(w, "BROKEN: the first broken link is %s\n", r.Broken)
	case r.AnchorLag > 0:
		fmt.Fprintf(w, "ok, but the anchor lags the chain by %d entries (written but not anchored yet: in flight, or a crash between an append and the anchor's update; the next audited action moves it); those entries are linked but not anchored\n", r.AnchorLag)
	default:
		fmt.Fprintln(w, "ok: every entry's hash, every link and the anchor hold")
	}
}
