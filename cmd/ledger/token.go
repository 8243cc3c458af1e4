package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/cmd/internal/secrets"
	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/token"
)

// tokenIssue prints a bearer token, signed with the data dir's key (or
// LEDGER_TOKEN_KEY), on its last line of output.
func tokenIssue(args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("token issue", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var keys secrets.Flags
	keys.Register(fs)
	role := fs.String("role", "", "admin | reviewer | person | scanner | analyst | dashboard | health-feed | auditor")
	venue := fs.String("venue", "", "venue id (scanner tokens are bound to one venue)")
	person := fs.String("person", "", "person id (person tokens)")
	district := fs.String("district", "", "6-digit district a reviewer or dashboard token is limited to (empty: city-wide)")
	holder := fs.String("subject", "", "who holds the token, e.g. li.wei or gate-2 (required for every role but person): it names them in the audit trail and in every event they cause")
	ttl := fs.Duration("ttl", 30*24*time.Hour, "how long the token is valid")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *ttl <= 0 {
		return fmt.Errorf("token issue: --ttl must be positive (got %s): such a token would be expired when issued", *ttl)
	}
	if *venue != "" && *role != domain.RoleScanner {
		return errors.New("token issue: --venue is only for --role scanner")
	}
	if *person != "" && *role != domain.RolePerson {
		return errors.New("token issue: --person is only for --role person")
	}
	a := domain.Actor{Role: *role}
	switch *role {
	case domain.RoleAdmin, domain.RoleReviewer, domain.RoleAnalyst, domain.RoleDashboard, domain.RoleHealthFeed, domain.RoleAuditor:
		a.Subject = *role
	case domain.RolePerson:
		id, err := uuid.Parse(*person)
		if err != nil {
			return errors.New("token issue: --role person needs --person <uuid>")
		}
		a.PersonID, a.Subject = id, "person:"+id.String()
	case domain.RoleScanner:
		id, err := uuid.Parse(*venue)
		if err != nil {
			return errors.New("token issue: --role scanner needs --venue <uuid>")
		}
		a.VenueID, a.Subject = id, "scanner:"+id.String()
	default:
		return fmt.Errorf("token issue: unknown --role %q", *role)
	}
	if *district != "" {
		if !domain.DistrictBound.Allow(domain.Actor{Role: *role}) || !domain.ValidDistrict(*district) {
			return errors.New("token issue: --district takes a 6-digit district and only with --role reviewer or dashboard")
		}
		a.District = *district
		a.Subject = token.Subject(a)
	}
	switch {
	case *holder == "" && *role != domain.RolePerson:
		return fmt.Errorf("token issue: --role %s needs --subject NAME, the token's holder (their looks and actions are recorded under it)", *role)
	case *holder != "" && *role == domain.RolePerson:
		return errors.New("token issue: a person token is named by --person; --subject is for the other roles")
	case *holder != "":
		name, err := domain.Text("subject", *holder, 64, true)
		if err != nil || strings.ContainsAny(name, ": ") {
			return errors.New("token issue: --subject takes a name of at most 64 characters without spaces, colons or control characters")
		}
		// The subject is the actor of every audit entry the holder causes,
		// kept for good: the reasons' rule against ID and phone numbers.
		if _, err := domain.ValidateAuditedReason(name, true); err != nil {
			return errors.New("token issue: --subject may not hold an ID or phone number (a run of 11 or more digits): it stays in the audit trail for good")
		}
		a.Subject = token.Subject(a) + ":" + name
	}
	sec, err := keys.Load(getenv)
	if err != nil {
		return fmt.Errorf("token issue: %w", err)
	}
	signer, err := token.NewSigner(sec.Token, time.Now)
	if err != nil {
		return err
	}
	tok, err := signer.IssueBearer(a, *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "%s token, valid until %s\n", *role, time.Now().Add(*ttl).UTC().Format(time.RFC3339))
	fmt.Fprintln(stdout, tok)
	return nil
}
