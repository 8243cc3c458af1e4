package http

import (
	"context"
	"net/http"

	"github.com/checkin-ledger/ledger/domain"
)

type alertsResponse struct {
	District string      `json:"district"`
	Alerts   []alertJSON `json:"alerts"`
	Position uint64      `json:"position"`
}

// listAlerts is GET /v1/alerts?district=: a district's alerts, newest
// first, for reviewers (of that district, when bound to one), admins,
// dashboards and analysts.
func (s *Server) listAlerts(w http.ResponseWriter, r *http.Request) error {
	a := actorOf(r)
	return list(s, w, r, alertQueryOf, func(ctx context.Context, q alertQuery) ([]domain.Alert, error) {
		return s.reads.Alerts(ctx, q.district, q.limit)
	}, func(q alertQuery, alerts []domain.Alert, pos uint64) any {
		return alertsResponse{District: q.district, Alerts: mapSlice(alerts, func(v domain.Alert) alertJSON {
			return alertOf(domain.AlertSeenBy(a, v))
		}), Position: pos}
	})
}

// alertQuery is GET /v1/alerts' query.
type alertQuery struct {
	district string
	limit    int
}

// A reviewer or dashboard bound to a district reads only that district's alerts, and
// may leave district out; everyone else must name one.
func alertQueryOf(r *http.Request) (alertQuery, error) {
	var q alertQuery
	var err error
	if q.district, err = districtScope(r, !domain.IsDistrictBound(actorOf(r))); err != nil {
		return q, err
	}
	q.limit, err = queryLimit(r, 100, 1000)
	return q, err
}
