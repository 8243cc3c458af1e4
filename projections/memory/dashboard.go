package memory

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/checkin-ledger/ledger/domain"
)

// dashboard holds the dashboard's anonymous counts, kept as passes are
// applied: per UTC hour (domain.PassHour), district and venue type, and
// the passes held per district. Nothing in it names a person or a pass,
// and nothing in it is derived from the pass table at read time: deleting
// passes (retention) leaves the hourly counts and must take what it deletes
// off held.
type dashboard struct {
	hours map[int64]map[dashCell]*domain.PassCounts // by Unix hour
	held  map[string]int64                          // passes held, by district
}

// dashCell is one district and venue type within an hour.
type dashCell struct{ district, venueType string }

func newDashboard() dashboard {
	return dashboard{hours: make(map[int64]map[dashCell]*domain.PassCounts), held: make(map[string]int64)}
}

func unixHour(t time.Time) int64 { return domain.PassHour(t).Unix() / 3600 }

// count adds one pass at at to its hour, district and venue type.
func (d *dashboard) count(at time.Time, district, venueType string, c domain.PassCounts) {
	h := unixHour(at)
	cells := d.hours[h]
	if cells == nil {
		cells = make(map[dashCell]*domain.PassCounts)
		d.hours[h] = cells
	}
	k := dashCell{district, venueType}
	n := cells[k]
	if n == nil {
		n = &domain.PassCounts{}
		cells[k] = n
	}
	n.Add(c)
	d.held[district]++
}

// Dashboard implements ledger.ReadModel: the counts kept by the projector,
// the occupancy of the venues with passes in their dwell, the review
// queues' lengths, all under one read lock.
func (s *Store) Dashboard(_ context.Context, q domain.DashboardQuery) (domain.Dashboard, error) {
	dwell := q.Dwell
	if dwell == nil {
		dwell = domain.DefaultDwell
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := domain.Dashboard{ByDistrict: map[string]domain.PassCounts{}, ByVenueType: map[string]domain.PassCounts{}}
	if !q.From.IsZero() && q.To.After(q.From) {
		for h := unixHour(q.From); h < unixHour(q.To.Add(-time.Nanosecond))+1; h++ {
			hc := domain.HourCounts{Hour: time.Unix(h*3600, 0).UTC()}
			for k, n := range s.dash.hours[h] {
				if q.District != "" && k.district != q.District {
					continue
				}
				hc.Add(*n)
				d, t := out.ByDistrict[k.district], out.ByVenueType[k.venueType]
				d.Add(*n)
				t.Add(*n)
				out.ByDistrict[k.district], out.ByVenueType[k.venueType] = d, t
			}
			out.Total.Add(hc.PassCounts)
			out.Hours = append(out.Hours, hc)
		}
	}
	if q.District != "" {
		out.PassesHeld = s.dash.held[q.District]
	} else {
		for _, n := range s.dash.held {
			out.PassesHeld += n
		}
	}
	for i := range s.venues {
		v := &s.venues[i]
		if !v.known || (q.District != "" && v.view.District != q.District) {
			continue
		}
		if v.view.Status == "pending" {
			out.PendingVenues++
		}
		if q.Top <= 0 {
			continue
		}
		if n := s.occupancy(int32(i), q.Now, dwell(v.view.Type)); n > 0 {
			out.OccupancyTop = append(out.OccupancyTop, domain.VenueOccupancy{VenueID: v.view.ID, Name: v.view.Name,
				Type: v.view.Type, District: v.view.District, Occupancy: n})
		}
	}
	slices.SortFunc(out.OccupancyTop, compareOccupancy)
	if len(out.OccupancyTop) > q.Top {
		out.OccupancyTop = out.OccupancyTop[:max(q.Top, 0)]
	}
	for _, d := range s.decls {
		if d.Queued && d.Kind != "" && d.Status == domain.DeclarationPending && (q.District == "" || d.District == q.District) {
			out.PendingDeclarations++
		}
	}
	return out, nil
}

// compareOccupancy orders the busiest venue first, ties by venue id.
func compareOccupancy(a, b domain.VenueOccupancy) int {
	if c := cmp.Compare(b.Occupancy, a.Occupancy); c != 0 {
		return c
	}
	return slices.Compare(a.VenueID[:], b.VenueID[:])
}
