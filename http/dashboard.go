package http

import (
	"bytes"
	"cmp"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
)

// The dashboard: GET /v1/dashboard/summary (JSON), GET /v1/dashboard/stream
// (Server-Sent Events: the same JSON, pushed when the read models move on)
// and GET /dashboard (the page, embedded below).

const (
	// dashboardTop is how many of the busiest venues the dashboard lists.
	dashboardTop = 10
	// dashboardFeed is how many denied and abnormal passes it lists.
	dashboardFeed = 20
	// streamCoalesce is how long the stream gathers the read models'
	// progress before it pushes: one update for a burst of passes.
	streamCoalesce = 750 * time.Millisecond
	// streamHeartbeat is how often an idle stream sends a comment, so that
	// proxies keep it open and a dead client is noticed.
	streamHeartbeat = 15 * time.Second
	// streamRefresh is how often a stream is sent a fresh summary with no
	// new event (occupancy decays with time, and a day ends).
	streamRefresh = 30 * time.Second
	// streamWriteTimeout bounds one write to a stream's client.
	streamWriteTimeout = 10 * time.Second
)

// dashboardsOnly is why a caller without a dashboard token is refused.
const dashboardsOnly = "the dashboard is for dashboard tokens"

// dashboardSummary is GET /v1/dashboard/summary.
func (s *Server) dashboardSummary(w http.ResponseWriter, r *http.Request) error {
	district, err := districtScope(r, false)
	if err != nil {
		return err
	}
	v, err := s.dashboard(r.Context(), district)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

// dashboard computes the dashboard of district ("" the city) now: today's
// counts in the server's time zone, the busiest venues, the review queues,
// and the day's latest denied and abnormal passes (the district alerts).
func (s *Server) dashboard(ctx context.Context, district string) (dashboardJSON, error) {
	pos, err := s.reads.Position(ctx)
	if err != nil {
		return dashboardJSON{}, err
	}
	now := s.now()
	loc := s.opts.Location
	start, end := domain.Day(now, loc)
	d, err := s.reads.Dashboard(ctx, domain.DashboardQuery{District: district, From: start, To: end, Now: now,
		Dwell: s.dwell, Top: dashboardTop})
	if err != nil {
		return dashboardJSON{}, err
	}
	out := dashboardJSON{
		District: district, Day: start.Format(time.DateOnly), TimeZone: loc.String(),
		PassesToday: d.Total.Passes, DeniedToday: d.Total.Denied, AbnormalToday: d.Total.Abnormal, PassesTotal: d.PassesHeld,
		PassesPerHour: make([]hourJSON, 0, len(d.Hours)),
		ByDistrict:    make([]districtCountsJSON, 0, len(d.ByDistrict)),
		ByVenueType:   make([]venueTypeCountsJSON, 0, len(d.ByVenueType)),
		OccupancyTop:  mapSlice(d.OccupancyTop, occupancyOf),
		Pending:       pendingJSON{Venues: d.PendingVenues, Declarations: d.PendingDeclarations},
		At:            now.In(loc), Position: pos,
	}
	if out.OccupancyTop == nil {
		out.OccupancyTop = []occupancyJSON{}
	}
	for _, h := range d.Hours {
		out.PassesPerHour = append(out.PassesPerHour, hourJSON{Hour: h.Hour.In(loc), passCountsJSON: passCountsOf(h.PassCounts)})
	}
	for k, c := range d.ByDistrict {
		out.ByDistrict = append(out.ByDistrict, districtCountsJSON{District: k, passCountsJSON: passCountsOf(c)})
	}
	slices.SortFunc(out.ByDistrict, func(a, b districtCountsJSON) int { return cmp.Compare(a.District, b.District) })
	for k, c := range d.ByVenueType {
		out.ByVenueType = append(out.ByVenueType, venueTypeCountsJSON{VenueType: k, passCountsJSON: passCountsOf(c)})
	}
	slices.SortFunc(out.ByVenueType, func(a, b venueTypeCountsJSON) int {
		return cmp.Or(cmp.Compare(b.Passes, a.Passes), cmp.Compare(a.VenueType, b.VenueType))
	})
	if out.Feed, err = s.dashboardFeed(ctx, district, d, start); err != nil {
		return dashboardJSON{}, err
	}
	return out, nil
}

// dashboardFeed lists today's latest alerts (denied and abnormal passes)
// of district, or of every district with abnormal passes today, newest
// first, with the venues' names and without the persons.
func (s *Server) dashboardFeed(ctx context.Context, district string, d domain.Dashboard, since time.Time) ([]feedJSON, error) {
	districts := []string{district}
	if district == "" {
		districts = districts[:0]
		for k, c := range d.ByDistrict {
			if c.Abnormal > 0 && k != "" {
				districts = append(districts, k)
			}
		}
	}
	var alerts []domain.Alert
	for _, k := range districts {
		as, err := s.reads.Alerts(ctx, k, dashboardFeed)
		if err != nil {
			return nil, err
		}
		for _, a := range as {
			if !a.At.Before(since) {
				alerts = append(alerts, a)
			}
		}
	}
	// Newest first, ties by event id: the districts come from a map, and
	// an order that changed by itself would push a summary that did not.
	slices.SortFunc(alerts, func(a, b domain.Alert) int {
		return cmp.Or(b.At.Compare(a.At), bytes.Compare(a.EventID[:], b.EventID[:]))
	})
	alerts = alerts[:min(len(alerts), dashboardFeed)]
	ids := make([]uuid.UUID, len(alerts))
	for i, a := range alerts {
		ids[i] = a.VenueID
	}
	venues, err := s.reads.VenuesByID(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]feedJSON, len(alerts))
	for i, a := range alerts {
		out[i] = feedJSON{EventID: a.PassEventID, At: a.At.In(s.opts.Location), District: a.District, VenueID: a.VenueID,
			VenueName: venues[a.VenueID].Name, CodeColour: a.CodeColour, Decision: a.Decision, Reason: a.Reason}
	}
	return out, nil
}

// queryToken lets the stream's client, a browser's EventSource (which sends
// no headers), give its bearer token as the access_token query parameter.
// The parameter leaves the request before anything else sees it, so no log
// ever holds it. Only the stream's route uses it.
func queryToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if !q.Has("access_token") {
			next.ServeHTTP(w, r)
			return
		}
		tok := q.Get("access_token")
		q.Del("access_token")
		r = r.Clone(r.Context())
		r.URL.RawQuery = q.Encode()
		r.RequestURI = r.URL.RequestURI()
		if r.Header.Get("Authorization") == "" && tok != "" {
			r.Header.Set("Authorization", "Bearer "+tok)
		}
		next.ServeHTTP(w, r)
	})
}

// dashboardStream is GET /v1/dashboard/stream: Server-Sent Events, one
// "summary" event (dashboardJSON) at once and another whenever the read
// models have moved on (coalesced, streamCoalesce), a comment every
// streamHeartbeat. A bad token, role or district is answered before the
// stream starts. The client's going away ends the handler and frees its
// share of the hub.
func (s *Server) dashboardStream(w http.ResponseWriter, r *http.Request) error {
	district, err := districtScope(r, false)
	if err != nil {
		return err
	}
	ctx := r.Context()
	tick := s.hub.join(district)
	defer s.hub.leave(district)
	body, err := s.hub.summary(ctx, s, district)
	if err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	// The server's read timeout would end the stream (a timed-out read of
	// the idle connection cancels the request); its write timeout is
	// replaced by one per write below.
	_ = rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // a proxy must not hold events back
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil // the stream's headers, and no stream
	}
	send := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout)) // unsupported by a recorder: no deadline then
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send(append([]byte("retry: 2000\n\n"), body...)) {
		return nil
	}
	heartbeat := time.NewTicker(streamHeartbeat)
	defer heartbeat.Stop()
	refresh := time.NewTicker(streamRefresh)
	defer refresh.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.hub.closing:
			return nil // the server shuts down: the client reconnects to another
		case <-heartbeat.C:
			if !s.streamMayGoOn(r) || !send([]byte(": heartbeat\n\n")) {
				return nil
			}
			continue
		case <-tick:
			tick = s.hub.next()
		case <-refresh.C:
		}
		if !s.streamMayGoOn(r) {
			return nil
		}
		next, err := s.hub.summary(ctx, s, district)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("dashboard stream", "err", err)
			}
			continue // the next progress or refresh tries again
		}
		if !bytes.Equal(next, body) && !send(next) {
			return nil
		}
		body = next
	}
}

// streamMayGoOn checks the stream's token again, as at its start (s.actor:
// signature, expiry, the caller's standing): a stream outlives no token.
// It is asked before each thing sent, so a stream ends at the latest a
// heartbeat after its token expired; the client's reconnect is then 401.
func (s *Server) streamMayGoOn(r *http.Request) bool {
	_, err := s.actor(r)
	return err == nil
}

// dashHub is what the open streams share: one watcher of the read models'
// position, running while a stream is open, which closes tick when the
// position has moved on; and the latest summary of each district, made
// once for every stream that wants it.
type dashHub struct {
	reads interface {
		Position(context.Context) (uint64, error)
	}
	waiter Waiter
	// closing is closed when the server shuts down: the streams end, so
	// that a graceful shutdown does not wait for them.
	closing   chan struct{}
	closeOnce sync.Once
	mu        sync.Mutex
	subs      int
	// streams counts the open streams of each district ("" the city):
	// latest keeps a summary only for these.
	streams map[string]int
	stop    context.CancelFunc
	done    chan struct{}
	tick    chan struct{}
	// made serialises making summaries, so that a hundred streams woken
	// together make one.
	made   sync.Mutex
	latest map[string]dashEvent
	// seen is the position the watcher saw last.
	seen uint64
}

// dashEvent is a district's summary as a stream event, and what it reflects.
type dashEvent struct {
	position uint64
	at       time.Time
	body     []byte
}

// shutdown ends every stream (http.Server.RegisterOnShutdown).
func (h *dashHub) shutdown() { h.closeOnce.Do(func() { close(h.closing) }) }

// join counts a stream of district in (starting the watcher for the
// first) and returns the channel closed at the next progress.
func (h *dashHub) join(district string) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.subs++
	if h.streams == nil {
		h.streams = make(map[string]int)
	}
	h.streams[district]++
	if h.subs == 1 {
		ctx, cancel := context.WithCancel(context.Background())
		h.stop, h.done = cancel, make(chan struct{})
		go h.watch(ctx, h.done)
	}
	return h.tick
}

// next returns the channel closed at the next progress.
func (h *dashHub) next() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.tick
}

// leave counts a stream of district out: the last of its district drops
// its summary (a client naming district after district must not make the
// hub keep one for each), the last of all stops the watcher.
func (h *dashHub) leave(district string) {
	h.mu.Lock()
	h.subs--
	if h.streams[district]--; h.streams[district] <= 0 {
		delete(h.streams, district)
		delete(h.latest, district)
	}
	var done chan struct{}
	if h.subs == 0 {
		h.stop()
		done = h.done
		h.latest = nil
	}
	h.mu.Unlock()
	if done != nil {
		<-done
	}
}

// watch closes tick each time the read models' position moves on, at most
// once per streamCoalesce, until ctx ends.
func (h *dashHub) watch(ctx context.Context, done chan struct{}) {
	defer close(done)
	pos := func() uint64 { return h.position(ctx) }
	last := pos()
	for ctx.Err() == nil {
		if h.waiter != nil {
			wctx, cancel := context.WithTimeout(ctx, streamRefresh)
			_ = h.waiter.WaitFor(wctx, last+1) // a timeout just looks again
			cancel()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(streamCoalesce):
		}
		if p := pos(); p != last {
			last = p
			h.mu.Lock()
			h.seen = p
			close(h.tick)
			h.tick = make(chan struct{})
			h.mu.Unlock()
		}
	}
}

// position is the read models' position, 0 when they do not answer.
func (h *dashHub) position(ctx context.Context) uint64 {
	p, _ := h.reads.Position(ctx)
	return p
}

// summary returns district's summary event, made again only when the read
// models have moved on or a second has passed since it was made.
func (h *dashHub) summary(ctx context.Context, s *Server, district string) ([]byte, error) {
	h.made.Lock()
	defer h.made.Unlock()
	// The watcher's last position says whether the summary made last is
	// still current: a hundred streams woken together ask the read models
	// once, not a hundred times.
	now := s.now()
	h.mu.Lock()
	ev, ok := h.latest[district]
	seen := h.seen
	h.mu.Unlock()
	if ok && ev.position >= seen && now.Sub(ev.at) < time.Second {
		return ev.body, nil
	}
	v, err := s.dashboard(ctx, district)
	if err != nil {
		return nil, err
	}
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	body := make([]byte, 0, len(j)+32)
	body = append(body, "event: summary\ndata: "...)
	body = append(body, j...)
	body = append(body, "\n\n"...)
	h.mu.Lock()
	if h.latest == nil {
		h.latest = make(map[string]dashEvent)
	}
	h.latest[district] = dashEvent{position: v.Position, at: now, body: body}
	h.mu.Unlock()
	return body, nil
}

// webFS holds the dashboard page and its assets (web/dashboard/): plain
// HTML, CSS and JavaScript, nothing fetched from another host.
//
//go:embed web/dashboard
var webFS embed.FS

// dashboardPage is GET /dashboard.
func (s *Server) dashboardPage(w http.ResponseWriter, r *http.Request) error {
	return serveWeb(w, "index.html")
}

// dashboardAsset is GET /dashboard/assets/{name}.
func (s *Server) dashboardAsset(w http.ResponseWriter, r *http.Request) error {
	return serveWeb(w, chi.URLParam(r, "name"))
}

func serveWeb(w http.ResponseWriter, name string) error {
	if name != path.Base(name) || name == "." || name == ".." {
		return errRouteNotFound
	}
	b, err := webFS.ReadFile("web/dashboard/" + name)
	if errors.Is(err, fs.ErrNotExist) {
		return errRouteNotFound
	}
	if err != nil {
		return err
	}
	types := map[string]string{".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
		".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
	h := w.Header()
	h.Set("Content-Type", cmp.Or(types[path.Ext(name)], "application/octet-stream"))
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	w.Write(b)
	return nil
}
