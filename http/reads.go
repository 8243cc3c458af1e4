package http

import (
	"context"
	"embed"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger"
)

// Trace windows.
const (
	// DefaultTraceWindow is the window of a trace with no from.
	DefaultTraceWindow = 14 * 24 * time.Hour
	// MaxTraceWindow is the longest window one trace request may ask for.
	MaxTraceWindow = 90 * 24 * time.Hour
)

type traceResponse struct {
	PersonID uuid.UUID `json:"person_id"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	// Source is read_model or log.
	Source   string         `json:"source"`
	Passes   []domain.Visit `json:"passes"`
	Position uint64         `json:"position"`
}

// personTrace is GET /v1/persons/{id}/trace?from=&to=&source=&reason=: a
// person's passes, for themself, their guardian, an admin or an analyst.
// source=read_model (the default) reads the read models; source=log replays
// the person's passes straight from the log, with each venue replayed from
// its own events, and gives the same answer (position is then the log's).
// An analyst must give a reason, and the look is recorded in their audit
// trail before the answer is written.
func (s *Server) personTrace(w http.ResponseWriter, r *http.Request) error {
	a := actorOf(r)
	q := r.URL.Query()
	source := q.Get("source")
	switch source {
	case "":
		source = domain.SourceReadModel
	case domain.SourceReadModel, domain.SourceLog:
	default:
		return domain.Invalid("source", "must be read_model or log")
	}
	reason := q.Get("reason")
	if a.Role == domain.RoleAnalyst && strings.TrimSpace(reason) == "" {
		return domain.Invalid("reason", "is required: an analyst says why they look at this person's history")
	}
	from, err := parseTime("from", q.Get("from"))
	if err != nil {
		return err
	}
	to, err := parseTime("to", q.Get("to"))
	if err != nil {
		return err
	}
	if to.IsZero() {
		to = s.now()
	}
	if from.IsZero() {
		from = to.Add(-DefaultTraceWindow)
	}
	switch {
	case to.Before(from):
		return domain.Invalid("to", "must not be before from")
	case to.Sub(from) > MaxTraceWindow:
		return domain.Invalid("from", "the window may span at most %d days", int(MaxTraceWindow/(24*time.Hour)))
	}
	pos, err := s.readPosition(r)
	if err != nil {
		return err
	}
	var p domain.PersonView
	if a.Role == domain.RoleAnalyst {
		var id uuid.UUID
		if id, err = pathID(r, "id"); err == nil {
			p, err = s.reads.Person(r.Context(), id)
		}
	} else {
		p, err = s.personFor(r, a)
	}
	if err != nil {
		return err
	}
	var visits []domain.Visit
	if source == domain.SourceLog {
		visits, pos, err = s.ledger.ReplayHistory(r.Context(), p.ID, from, to)
	} else {
		visits, err = s.reads.Trace(r.Context(), p.ID, from, to)
	}
	if err != nil {
		return err
	}
	if a.Role == domain.RoleAnalyst {
		look := ledger.Look{PersonID: p.ID, From: from, To: to, Reason: reason, Source: source, ReadPosition: pos}
		if _, err := s.ledger.RecordLook(r.Context(), a, look); err != nil {
			return err
		}
	}
	if visits == nil {
		visits = []domain.Visit{}
	}
	return writeJSON(w, http.StatusOK, traceResponse{PersonID: p.ID, From: from.UTC(), To: to.UTC(), Source: source, Passes: visits, Position: pos})
}

type alertsResponse struct {
	District string         `json:"district"`
	Alerts   []domain.Alert `json:"alerts"`
	Position uint64         `json:"position"`
}

// listAlerts is GET /v1/alerts?district=: a district's alerts, newest
// first, for reviewers, admins, dashboards and analysts.
func (s *Server) listAlerts(w http.ResponseWriter, r *http.Request) error {
	return list(s, w, r, alertQueryOf, func(ctx context.Context, q alertQuery) ([]domain.Alert, error) {
		return s.reads.Alerts(ctx, q.district, q.limit)
	}, func(q alertQuery, alerts []domain.Alert, pos uint64) any {
		return alertsResponse{District: q.district, Alerts: alerts, Position: pos}
	})
}

// alertQuery is GET /v1/alerts' query.
type alertQuery struct {
	district string
	limit    int
}

func alertQueryOf(r *http.Request) (alertQuery, error) {
	q := alertQuery{district: r.URL.Query().Get("district")}
	if err := districtParam(q.district, true); err != nil {
		return q, err
	}
	var err error
	q.limit, err = queryLimit(r, 100, 1000)
	return q, err
}

type statusResponse struct {
	Status   string `json:"status"`
	Position uint64 `json:"position,omitempty"`
}

// healthz is GET /healthz: the process is up.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, statusResponse{Status: "ok"})
}

// readyz is GET /readyz: NATS reachable and the read models caught up.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.cfg.Ready(ctx); err != nil {
			writeProblem(w, Problem{Type: ProblemUnavailable, Title: "Not ready", Status: http.StatusServiceUnavailable,
				Detail: err.Error()})
			return nil
		}
	}
	pos, err := s.reads.Position(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, statusResponse{Status: "ready", Position: pos})
}

// specFS holds the hand-written OpenAPI description served at /openapi.yaml.
//
//go:embed openapi.yaml
var specFS embed.FS

// openAPI is GET /openapi.yaml: the hand-written description of every route.
func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) error {
	spec, err := specFS.ReadFile("openapi.yaml")
	if err != nil {
		return fmt.Errorf("read embedded openapi.yaml: %w", err)
	}
	w.Header().Set("Content-Type", "application/yaml")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.WriteHeader(http.StatusOK)
	w.Write(spec)
	return nil
}
