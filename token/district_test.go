package token

import (
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
)

func TestReviewerDistrict(t *testing.T) {
	s, _ := newSigner(t, keyA)
	tok, err := s.IssueBearer(domain.Actor{Role: domain.RoleReviewer, District: "371302"}, 0)
	if err != nil {
		t.Fatalf("IssueBearer: %v", err)
	}
	a, err := s.ParseBearer(tok)
	if err != nil || a.District != "371302" || a.Subject != "reviewer:371302" || a.Role != domain.RoleReviewer {
		t.Fatalf("reviewer of a district = %+v, %v", a, err)
	}
	city, err := s.IssueBearer(domain.Actor{Role: domain.RoleReviewer}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if a, err := s.ParseBearer(city); err != nil || a.District != "" || a.Subject != "reviewer" {
		t.Fatalf("city-wide reviewer = %+v, %v", a, err)
	}
	dash, err := s.IssueBearer(domain.Actor{Role: domain.RoleDashboard, District: "371311"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if a, err := s.ParseBearer(dash); err != nil || a.District != "371311" || a.Subject != "dashboard:371311" {
		t.Fatalf("dashboard of a district = %+v, %v", a, err)
	}
	for _, bad := range []domain.Actor{
		{Role: domain.RolePerson, PersonID: uuid.New(), District: "371302"},
		{Role: domain.RoleAdmin, District: "371302"},
		{Role: domain.RoleAnalyst, District: "371302"},
		{Role: domain.RoleReviewer, District: "3713"},
		{Role: domain.RoleDashboard, District: "37130x"},
	} {
		if _, err := s.IssueBearer(bad, 0); !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("IssueBearer(%+v) = %v, want ErrInvalid", bad, err)
		}
	}
}
