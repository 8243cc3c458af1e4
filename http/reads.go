package http

import (
	"context"
	"embed"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
)

// Trace windows.
const (
	// DefaultTraceWindow is the window of a trace with no from.
	DefaultTraceWindow = 14 * 24 * time.Hour
	// MaxTraceWindow is the longest window one trace request may ask for.
	MaxTraceWindow = 90 * 24 * time.Hour
)

type traceResponse struct {
	PersonID uuid.UUID      `json:"person_id"`
	From     time.Time      `json:"from"`
	To       time.Time      `json:"to"`
	Passes   []domain.Visit `json:"passes"`
	Position uint64         `json:"position"`
}

// personTrace is GET /v1/persons/{id}/trace?from=&to=: a person's passes,
// for themself, their guardian, or an admin. Analysts trace through POST
// /v1/traces, which records every look (issue 4).
func (s *Server) personTrace(w http.ResponseWriter, r *http.Request) {
	a, err := s.actor(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !hasRole(a, domain.RolePerson, domain.RoleAdmin) {
		s.writeError(w, r, forbidden("a trace history is for the person themself, their guardian or an admin"))
		return
	}
	q := r.URL.Query()
	from, err := parseTime("from", q.Get("from"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	to, err := parseTime("to", q.Get("to"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if to.IsZero() {
		to = s.now()
	}
	if from.IsZero() {
		from = to.Add(-DefaultTraceWindow)
	}
	switch {
	case to.Before(from):
		s.writeError(w, r, domain.Invalid("to", "must not be before from"))
		return
	case to.Sub(from) > MaxTraceWindow:
		s.writeError(w, r, domain.Invalid("from", "the window may span at most %d days", int(MaxTraceWindow/(24*time.Hour))))
		return
	}
	pos, err := s.readPosition(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	p, err := s.personFor(r, a)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	visits, err := s.reads.Trace(r.Context(), p.ID, from, to)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if visits == nil {
		visits = []domain.Visit{}
	}
	s.writeJSON(w, r, http.StatusOK, traceResponse{PersonID: p.ID, From: from.UTC(), To: to.UTC(), Passes: visits, Position: pos})
}

type alertsResponse struct {
	District string         `json:"district"`
	Alerts   []domain.Alert `json:"alerts"`
	Position uint64         `json:"position"`
}

// listAlerts is GET /v1/alerts?district=: a district's alerts, newest
// first, for reviewers, admins, dashboards and analysts.
func (s *Server) listAlerts(w http.ResponseWriter, r *http.Request) {
	a, err := s.actor(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !hasRole(a, domain.RoleAdmin, domain.RoleReviewer, domain.RoleDashboard, domain.RoleAnalyst) {
		s.writeError(w, r, forbidden("alerts are for reviewers, admins, dashboards and analysts"))
		return
	}
	district := r.URL.Query().Get("district")
	if !domain.ValidDistrict(district) {
		s.writeError(w, r, domain.Invalid("district", "must be a 6-digit administrative division code"))
		return
	}
	limit, err := queryLimit(r, 100, 1000)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	pos, err := s.readPosition(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	alerts, err := s.reads.Alerts(r.Context(), district, limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if alerts == nil {
		alerts = []domain.Alert{}
	}
	s.writeJSON(w, r, http.StatusOK, alertsResponse{District: district, Alerts: alerts, Position: pos})
}

type statusResponse struct {
	Status   string `json:"status"`
	Position uint64 `json:"position,omitempty"`
}

// healthz is GET /healthz: the process is up.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	s.writeJSON(w, r, http.StatusOK, statusResponse{Status: "ok"})
}

// readyz is GET /readyz: NATS reachable and the read models caught up.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.cfg.Ready(ctx); err != nil {
			writeProblem(w, Problem{Type: ProblemUnavailable, Title: "Not ready", Status: http.StatusServiceUnavailable,
				Detail: err.Error()})
			return
		}
	}
	pos, err := s.reads.Position(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, statusResponse{Status: "ready", Position: pos})
}

// specFS holds the hand-written OpenAPI description served at /openapi.yaml.
//
//go:embed openapi.yaml
var specFS embed.FS

// openAPI is GET /openapi.yaml: the hand-written description of every route.
func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	spec, err := specFS.ReadFile("openapi.yaml")
	if err != nil {
		s.writeError(w, r, fmt.Errorf("read embedded openapi.yaml: %w", err))
		return
	}
	w.Header().Set("Content-Type", "application/yaml")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.WriteHeader(http.StatusOK)
	w.Write(spec)
}
