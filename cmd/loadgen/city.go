package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/schollz/progressbar/v3"

	"github.com/checkin-ledger/ledger/cmd/internal/secrets"
	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/domain/idcard"
	"github.com/checkin-ledger/ledger/token"
)

// cityOptions are `loadgen city`'s flags.
type cityOptions struct {
	base     string
	people   int
	days     int
	seed     uint64
	rate     float64
	duration time.Duration
	conc     int
	end      time.Time
	retryFor time.Duration
	progress bool
}

// The simulated city's proportions.
const (
	shareWorking    = 0.72  // adults with a workplace
	shareGuardians  = 0.28  // adults who register family members
	shareRejected   = 0.02  // identity checks rejected
	sharePending    = 0.05  // identity checks not done yet
	shareYellow     = 0.01  // yellow codes from the health feed
	shareRed        = 0.004 // red codes
	shareOffline    = 0.12  // venues whose scanner was offline and uploads in batches
	shareMissingOut = 0.03  // stays whose exit was never scanned
	shareArrivals   = 0.03  // adults who declare an arrival
	shareSubAdmins  = 0.15  // venues with a sub-admin
	maxCityDays     = 27    // passes must lie within the server's retention (28 days at the least used)
	cityZoneOffset  = 8 * 3600
)

// city runs `loadgen city`: it builds a synthetic city through the API,
// then (with --rate and --duration) drives live passes, and prints one JSON
// line that sums up what was sent and how the server answered.
func city(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("loadgen city", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o cityOptions
	fs.StringVar(&o.base, "url", "http://127.0.0.1:8080", "the ledger's base URL")
	var keys secrets.Flags
	keys.Register(fs)
	fs.IntVar(&o.people, "people", 1000, "adults to register (dependants come on top)")
	fs.IntVar(&o.days, "days", 3, fmt.Sprintf("days of history ending at --end (1 to %d: passes must lie within the server's retention)", maxCityDays))
	fs.Uint64Var(&o.seed, "seed", 1, "the city's seed: the same seed against a fresh server gives the same counts")
	fs.Float64Var(&o.rate, "rate", 0, "live passes per second after the build (0: no live phase)")
	fs.DurationVar(&o.duration, "duration", 0, "how long the live phase runs")
	fs.IntVar(&o.conc, "c", 16, "requests in flight at once")
	end := fs.String("end", "", "when the history ends (RFC 3339, taken to the minute; default now). The same --seed and --end send the same requests again: a second run is answered as duplicates")
	fs.DurationVar(&o.retryFor, "retry-for", 2*time.Minute, "how long one request is sent again through 503, 429 and refused connections (a restarting server)")
	fs.BoolVar(&o.progress, "progress", true, "show progress bars on stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("city: unexpected arguments %q", fs.Args())
	case o.people < 1:
		return errors.New("city: --people must be at least 1")
	case o.days < 1 || o.days > maxCityDays:
		return fmt.Errorf("city: --days must be 1 to %d", maxCityDays)
	case o.conc < 1:
		return errors.New("city: -c must be at least 1")
	case o.rate < 0 || (o.rate > 0) != (o.duration > 0):
		return errors.New("city: --rate and --duration go together, both above 0 (or neither)")
	}
	// Passes are planned on whole minutes of the local day: the window's end
	// is taken to the minute, so runs started within the same minute plan
	// the same passes.
	o.end = time.Now().Truncate(time.Minute)
	if *end != "" {
		t, err := time.Parse(time.RFC3339, *end)
		if err != nil {
			return fmt.Errorf("city: --end: %w", err)
		}
		if t.After(time.Now()) {
			return errors.New("city: --end must not be in the future")
		}
		// The whole history must lie within the server's retention, as
		// --days does for a history ending now.
		if first := t.AddDate(0, 0, -o.days); time.Since(first) > maxCityDays*24*time.Hour {
			return fmt.Errorf("city: --end %s with --days %d starts the history %s ago: passes must lie within the last %d days (the server's retention)",
				*end, o.days, time.Since(first).Round(time.Hour), maxCityDays)
		}
		o.end = t
	}
	o.end = o.end.Truncate(time.Minute)
	sec, err := keys.Load(getenv)
	if err != nil {
		return err
	}
	c, err := newCity(o, sec.Token, stderr)
	if err != nil {
		return err
	}
	if err := c.preflight(ctx); err != nil {
		return err
	}
	sum, err := c.run(ctx)
	line, merr := json.Marshal(sum)
	if merr != nil {
		return merr
	}
	fmt.Fprintf(stdout, "%s\n", line)
	if err == nil && sum.Errors > 0 {
		err = fmt.Errorf("city: %d requests were refused or got no answer (first: %s)", sum.Errors, sum.FirstError)
	}
	return err
}

// preflight checks that the server answers and takes the simulator's
// tokens (signed with the key of --data) before anything is sent.
func (c *citySim) preflight(ctx context.Context) error {
	_, _, err := c.api.do(ctx, "GET", "/v1/venues?limit=1", c.reviewr, nil, nil)
	var ae *apiError
	switch {
	case errors.As(err, &ae) && ae.Status == http.StatusUnauthorized:
		return fmt.Errorf("city: %s refuses the simulator's tokens: --data (or LEDGER_TOKEN_KEY) must be the server's own", c.o.base)
	case err != nil:
		return fmt.Errorf("city: %s: %w", c.o.base, err)
	}
	return nil
}

// Simulated people, venues and what was sent for them.
type (
	cityPerson struct {
		name, idNumber, phone string
		district              int
		home, work            int // venue indexes; -1: none
		guardian              int // for a dependant; -1: an adult
		relation              string
		dependants            []int
		verify                string // approved, rejected or "" (left pending)
		colour                string
		// Known once registered.
		id      uuid.UUID
		token   string
		ok      bool
		resumed bool // registered by an earlier run (the registration answered as a duplicate)
	}
	cityVenue struct {
		name, typ, address string
		district           int
		lat, lng           float64
		manager, subAdmin  int    // person indexes; -1: none
		review             string // approve, reject or "" (left pending)
		offline            bool
		// Known once applied and approved.
		id      uuid.UUID
		code    string
		scanner string
		ok      bool
	}
)

// citySim is one run of `loadgen city`.
type citySim struct {
	o       cityOptions
	api     *apiClient
	key     []byte // the ledger's token key, for scanner tokens and offline personal codes
	signer  *token.Signer
	stderr  io.Writer
	ns      uuid.UUID // event ids are derived from it: the same seed, the same ids
	people  []*cityPerson
	adults  []int
	venues  []*cityVenue
	byType  map[string][]int // approved venues by type
	reviewr string
	feed    string
	maxPos  atomic.Uint64
	passLat latencies
	liveLat latencies
	start   time.Time

	mu  sync.Mutex
	sum citySummary
}

// citySummary is the JSON line `loadgen city` ends with. Counts (the Counts
// field) depend only on --seed, --people, --days and --end (to the minute)
// against a fresh server; the rest is how it went.
type citySummary struct {
	Seed         uint64        `json:"seed"`
	Days         int           `json:"days"`
	End          time.Time     `json:"end"`
	Counts       cityCounts    `json:"counts"`
	Live         *liveSummary  `json:"live,omitempty"`
	Latency      percentilesMS `json:"pass_latency_ms"`
	Retries      int64         `json:"retries"`
	Duplicates   int           `json:"duplicates"` // answers naming an earlier request's stored event (a retry, or a second run)
	Errors       int           `json:"errors"`
	FirstError   string        `json:"first_error,omitempty"`
	ElapsedS     float64       `json:"elapsed_s"`
	BuildPassesS float64       `json:"history_passes_per_s"`
}

// cityCounts are what the build sent and how it was answered.
type cityCounts struct {
	People       int            `json:"people"`
	Dependants   int            `json:"dependants"`
	Families     int            `json:"families"`
	Verified     int            `json:"verified"`
	Unverified   int            `json:"identity_rejected"`
	Venues       int            `json:"venues"`
	Approved     int            `json:"venues_approved"`
	VenueRejects int            `json:"venues_rejected"`
	CodesIssued  int            `json:"venue_codes"`
	SubAdmins    int            `json:"sub_admins"`
	VenueTypes   map[string]int `json:"venues_by_type"`
	Health       int            `json:"health_records"`
	Yellow       int            `json:"yellow"`
	Red          int            `json:"red"`
	Passes       passCounts     `json:"passes"`
	Declarations declCounts     `json:"declarations"`
	Rejected     map[string]int `json:"rejected_by,omitempty"`
}

// passCounts sum passes. Sent counts every person's pass (a guardian's
// dependants one each); Accepted = Pass + Deny.
type passCounts struct {
	Sent         int `json:"sent"`
	Accepted     int `json:"accepted"`
	Pass         int `json:"pass"`
	Deny         int `json:"denied"`
	Rejected     int `json:"rejected"`
	Requests     int `json:"requests"`
	Batches      int `json:"batches"`
	Offline      int `json:"offline"`
	Family       int `json:"with_guardian"`
	Manual       int `json:"manual"`
	StaffScans   int `json:"staff_scans"`
	MissingExits int `json:"missing_exits"`
}

type declCounts struct {
	Arrival  int `json:"arrival"`
	Truck    int `json:"truck"`
	Approved int `json:"approved"`
	Rejected int `json:"rejected"`
	Pending  int `json:"pending"`
}

// liveSummary is the live phase.
type liveSummary struct {
	Target  float64       `json:"target_per_s"`
	Rate    float64       `json:"passes_per_s"`
	Seconds float64       `json:"seconds"`
	Passes  passCounts    `json:"passes"`
	Latency percentilesMS `json:"latency_ms"`
}

func newCity(o cityOptions, key []byte, stderr io.Writer) (*citySim, error) {
	signer, err := token.NewSigner(key, time.Now)
	if err != nil {
		return nil, err
	}
	c := &citySim{
		o: o, key: key, signer: signer, stderr: stderr,
		ns:     uuid.NewSHA1(uuid.NameSpaceURL, []byte("loadgen-city:"+strconv.FormatUint(o.seed, 10))),
		byType: map[string][]int{},
	}
	c.api = &apiClient{
		base: o.base, retryFor: o.retryFor,
		hc:     &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.conc * 2, MaxConnsPerHost: o.conc * 2}, Timeout: 30 * time.Second},
		notice: func(s string) { fmt.Fprintln(stderr, "loadgen city:", s) },
	}
	c.sum.Seed, c.sum.Days, c.sum.End = o.seed, o.days, o.end.UTC()
	c.sum.Counts.VenueTypes = map[string]int{}
	c.sum.Counts.Rejected = map[string]int{}
	if c.reviewr, err = signer.IssueBearer(domain.Actor{Role: domain.RoleReviewer, Subject: "city-reviewer"}, 24*time.Hour); err != nil {
		return nil, err
	}
	if c.feed, err = signer.IssueBearer(domain.Actor{Role: domain.RoleHealthFeed, Subject: "city-health-feed"}, 24*time.Hour); err != nil {
		return nil, err
	}
	c.plan()
	return c, nil
}

// eventID derives the event id of one planned request.
func (c *citySim) eventID(format string, args ...any) string {
	return uuid.NewSHA1(c.ns, fmt.Appendf(nil, format, args...)).String()
}

// rng is a generator for one part of the plan: the same seed and part,
// the same numbers, in whatever order the parts are built.
func (c *citySim) rng(part uint64, n int) *rand.Rand {
	return rand.New(rand.NewPCG(c.o.seed, part<<40|uint64(n)))
}

const (
	rngPeople = iota + 1
	rngVenues
	rngDay
	rngDecl
	rngLive
)

// plan lays out the city: people, families, venues, who works where. It
// depends on the options alone.
func (c *citySim) plan() {
	rng := c.rng(rngPeople, 0)
	dw := make([]float64, len(cityDistricts))
	for i, d := range cityDistricts {
		dw[i] = d.weight
	}
	// Venues: every type at least once, the rest in proportion.
	vr := c.rng(rngVenues, 0)
	for _, vt := range cityVenueTypes {
		n := max(1, int(vt.per1000*float64(c.o.people)/1000+0.5))
		for k := range n {
			d := weighted(vr, dw)
			if k == 0 && vt.typ == "residential" {
				d = 0
			}
			v := &cityVenue{typ: vt.typ, district: d, manager: -1, subAdmin: -1,
				lat: cityDistricts[d].lat + (vr.Float64()-0.5)*0.08, lng: cityDistricts[d].lng + (vr.Float64()-0.5)*0.08}
			v.name = fmt.Sprintf("%s%s%d号", cityDistricts[d].name, vt.label, k+1)
			v.address = fmt.Sprintf("临沂市%s%s%d号", cityDistricts[d].name, streets[vr.IntN(len(streets))], 1+vr.IntN(300))
			switch x := vr.Float64(); {
			case k == 0: // every type has an approved venue
				v.review = domain.ReviewApprove
			case x < 0.05:
				v.review = domain.ReviewReject
			case x < 0.08:
				v.review = "" // still pending
			default:
				v.review = domain.ReviewApprove
			}
			v.offline = vt.typ != "residential" && vt.typ != "public_transport" && vr.Float64() < shareOffline
			c.venues = append(c.venues, v)
		}
	}
	approved := func(typ string, district int) []int {
		var all, near []int
		for i, v := range c.venues {
			if v.typ == typ && v.review == domain.ReviewApprove {
				all = append(all, i)
				if v.district == district {
					near = append(near, i)
				}
			}
		}
		if len(near) > 0 {
			return near
		}
		return all
	}
	for i, v := range c.venues {
		if v.review == domain.ReviewApprove {
			c.byType[v.typ] = append(c.byType[v.typ], i)
		}
	}
	var jobTypes []string
	var jobWeights []float64
	for _, vt := range cityVenueTypes {
		if vt.jobs > 0 {
			jobTypes = append(jobTypes, vt.typ)
			jobWeights = append(jobWeights, vt.jobs*float64(len(c.byType[vt.typ])))
		}
	}

	seen := map[string]bool{}
	newPerson := func(minAge, maxAge int, district int) *cityPerson {
		p := &cityPerson{name: personName(rng), district: district, home: -1, work: -1, guardian: -1}
		for {
			age := minAge + rng.IntN(maxAge-minAge+1)
			birth := c.o.end.AddDate(-age, 0, -rng.IntN(365))
			n := residentNumber(cityDistricts[district].code, birth, rng.IntN(1000))
			if !seen[n] {
				seen[n], p.idNumber = true, n
				break
			}
		}
		return p
	}
	for i := range c.o.people {
		d := weighted(rng, dw)
		p := newPerson(18, 75, d)
		p.phone = fmt.Sprintf("1%d%09d", 3+rng.IntN(7), rng.IntN(1_000_000_000))
		homes := approved("residential", d)
		p.home = homes[rng.IntN(len(homes))]
		if rng.Float64() < shareWorking {
			t := jobTypes[weighted(rng, jobWeights)]
			ws := approved(t, d)
			p.work = ws[rng.IntN(len(ws))]
		}
		switch x := rng.Float64(); {
		case x < shareRejected || i == 3: // (a small city has one of each kind)
			p.verify = domain.VerifyRejected
		case x < shareRejected+sharePending:
			p.verify = ""
		default:
			p.verify = domain.VerifyApproved
		}
		p.colour = domain.ColourGreen
		switch x := rng.Float64(); {
		case x < shareRed || i == 1:
			p.colour = domain.ColourRed
		case x < shareRed+shareYellow || i == 2:
			p.colour = domain.ColourYellow
		}
		c.adults = append(c.adults, len(c.people))
		c.people = append(c.people, p)
	}
	// Families: a guardian registers children or a grandparent (no phone).
	for _, gi := range c.adults {
		g := c.people[gi]
		if g.verify == domain.VerifyRejected || rng.Float64() >= shareGuardians {
			continue
		}
		for k := range 1 + rng.IntN(2) {
			var dep *cityPerson
			if k == 0 && rng.IntN(10) < 3 {
				dep = newPerson(70, 92, g.district)
				dep.relation = domain.RelationGrandparent
				if ec := approved("elderly_care", g.district); rng.IntN(2) == 0 {
					dep.work = ec[rng.IntN(len(ec))] // spends the day there
				}
			} else {
				dep = newPerson(4, 15, g.district)
				dep.relation = domain.RelationChild
				sc := approved("school", g.district)
				dep.work = sc[rng.IntN(len(sc))]
			}
			dep.guardian, dep.home, dep.colour = gi, g.home, domain.ColourGreen
			g.dependants = append(g.dependants, len(c.people))
			c.people = append(c.people, dep)
		}
	}
	// Managers and sub-admins: registered people whose identity is not rejected.
	var staff []int
	for _, i := range c.adults {
		if c.people[i].verify != domain.VerifyRejected {
			staff = append(staff, i)
		}
	}
	for i, v := range c.venues {
		v.manager = staff[i%len(staff)]
		if len(staff) > 1 && vr.Float64() < shareSubAdmins {
			v.subAdmin = staff[(i+1+vr.IntN(len(staff)-1))%len(staff)]
			if v.subAdmin == v.manager {
				v.subAdmin = -1
			}
		}
	}
}

// run builds the city, then drives the live phase.
func (c *citySim) run(ctx context.Context) (citySummary, error) {
	c.start = time.Now()
	steps := []struct {
		name string
		f    func(context.Context) error
	}{
		{"register people", c.registerPeople},
		{"verify identities", c.verifyPeople},
		{"register family members", c.registerFamilies},
		{"apply for and review venues", c.buildVenues},
		{"health feed", c.healthFeed},
		{"history passes", c.history},
		{"declarations", c.declarations},
	}
	var err error
	for _, s := range steps {
		fmt.Fprintf(c.stderr, "loadgen city: %s\n", s.name)
		if err = s.f(ctx); err != nil {
			err = fmt.Errorf("%s: %w", s.name, err)
			break
		}
	}
	if err == nil && c.o.rate > 0 {
		fmt.Fprintf(c.stderr, "loadgen city: live passes, %.0f/s for %s\n", c.o.rate, c.o.duration)
		err = c.live(ctx)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sum.Latency = c.passLat.percentiles()
	c.sum.Retries = c.api.retries.Load()
	c.sum.ElapsedS = round2(time.Since(c.start).Seconds())
	if len(c.sum.Counts.Rejected) == 0 {
		c.sum.Counts.Rejected = nil
	}
	return c.sum, err
}

func round2(x float64) float64 { return float64(int64(x*100+0.5)) / 100 }

// fail records a request the server refused for good (or that never got
// an answer); kind names it in the summary.
func (c *citySim) fail(what string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	kind := "no-answer"
	var ae *apiError
	if errors.As(err, &ae) {
		kind = ae.kind()
	}
	c.sum.Counts.Rejected[what+":"+kind]++
	c.sum.Errors++
	if c.sum.FirstError == "" {
		c.sum.FirstError = what + ": " + err.Error()
	}
}

// seen notes the position an answer names and whether it was a duplicate.
func (c *citySim) seen(pos uint64, dup bool) {
	for {
		old := c.maxPos.Load()
		if pos <= old || c.maxPos.CompareAndSwap(old, pos) {
			break
		}
	}
	if dup {
		c.mu.Lock()
		c.sum.Duplicates++
		c.mu.Unlock()
	}
}

// isConflict reports a 409: for a review or a verification sent again (a
// second run, or a retry whose first attempt was stored), the state it
// asks for is already there.
func isConflict(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Status == http.StatusConflict
}

// waitRead waits until the read models have applied everything written so
// far (min_position), so the next phase's commands see it.
func (c *citySim) waitRead(ctx context.Context, path string) error {
	_, _, err := c.api.do(ctx, "GET", fmt.Sprintf("%s?min_position=%d", path, c.maxPos.Load()), c.reviewr, nil, nil)
	return err
}

type writeAnswer struct {
	PersonID      uuid.UUID `json:"person_id"`
	VenueID       uuid.UUID `json:"venue_id"`
	DeclarationID uuid.UUID `json:"declaration_id"`
	Token         string    `json:"token"`
	Position      uint64    `json:"position"`
	Duplicate     bool      `json:"duplicate"`
}

func jsonBody(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain maps and structs of strings and numbers
	}
	return b
}

func (c *citySim) bar(total int, what string) *progressbar.ProgressBar {
	if !c.o.progress {
		return progressbar.DefaultSilent(int64(total))
	}
	return progressbar.NewOptions64(int64(total), progressbar.OptionSetWriter(c.stderr), progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("req"),
		progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionClearOnFinish())
}

// registerPeople registers every adult (POST /v1/persons, public), each
// with its own event id: a registration sent again is answered as the
// original, with a token.
func (c *citySim) registerPeople(ctx context.Context) error {
	bar := c.bar(len(c.adults), "register")
	parallel(ctx, c.o.conc, len(c.adults), func(k int) {
		defer bar.Add(1)
		p := c.people[c.adults[k]]
		var a writeAnswer
		_, _, err := c.api.do(ctx, "POST", "/v1/persons", "", jsonBody(map[string]string{
			"name": p.name, "id_type": idcard.ResidentID, "id_number": p.idNumber, "phone": p.phone,
			"event_id": c.eventID("person/%d", k),
		}), &a)
		if err != nil {
			c.fail("register", err)
			return
		}
		p.id, p.token, p.ok, p.resumed = a.PersonID, a.Token, true, a.Duplicate
		c.seen(a.Position, a.Duplicate)
		c.mu.Lock()
		c.sum.Counts.People++
		c.mu.Unlock()
	})
	_ = bar.Finish()
	return ctx.Err()
}

// verifyPeople has a reviewer approve most identity checks (a face check)
// and reject a few (a manual review); some stay pending.
func (c *citySim) verifyPeople(ctx context.Context) error {
	parallel(ctx, c.o.conc, len(c.adults), func(k int) {
		p := c.people[c.adults[k]]
		if !p.ok || p.verify == "" {
			return
		}
		method := domain.VerifyFace
		if p.verify == domain.VerifyRejected {
			method = domain.VerifyManual
		}
		var a writeAnswer
		_, _, err := c.api.do(ctx, "POST", "/v1/persons/"+p.id.String()+"/verification", c.reviewr,
			jsonBody(map[string]string{"method": method, "result": p.verify}), &a)
		if err != nil && !isConflict(err) {
			c.fail("verify", err)
			return
		}
		c.seen(a.Position, false)
		c.mu.Lock()
		if p.verify == domain.VerifyApproved {
			c.sum.Counts.Verified++
		} else {
			c.sum.Counts.Unverified++
		}
		c.mu.Unlock()
	})
	return ctx.Err()
}

// registerFamilies has each guardian register their dependants, one after
// the other (the guardian's limit is an hourly one).
func (c *citySim) registerFamilies(ctx context.Context) error {
	var guardians []int
	for _, i := range c.adults {
		if p := c.people[i]; p.ok && len(p.dependants) > 0 {
			guardians = append(guardians, i)
		}
	}
	parallel(ctx, c.o.conc, len(guardians), func(k int) {
		g := c.people[guardians[k]]
		added := 0
		var before []uuid.UUID
		if g.resumed {
			// An earlier run may have registered them: the guardian's record
			// lists their family in the order registered (a guardian may
			// register only a few an hour, so no request is spent on them).
			var gp struct {
				FamilyMembers []uuid.UUID `json:"family_members"`
			}
			if _, _, err := c.api.do(ctx, "GET", "/v1/persons/"+g.id.String(), g.token, nil, &gp); err == nil {
				before = gp.FamilyMembers
			}
		}
		for n, di := range g.dependants {
			d := c.people[di]
			if n < len(before) {
				d.id, d.ok = before[n], true
				added++
				continue
			}
			var a writeAnswer
			_, _, err := c.api.do(ctx, "POST", "/v1/persons/"+g.id.String()+"/family-members", g.token, jsonBody(map[string]string{
				"name": d.name, "id_type": idcard.ResidentID, "id_number": d.idNumber, "relation": d.relation,
			}), &a)
			if isConflict(err) {
				// Registered by an earlier attempt or run: the guardian's
				// record lists their family in the order registered.
				var gp struct {
					FamilyMembers []uuid.UUID `json:"family_members"`
				}
				if _, _, gerr := c.api.do(ctx, "GET", "/v1/persons/"+g.id.String(), g.token, nil, &gp); gerr == nil && n < len(gp.FamilyMembers) {
					a.PersonID, err = gp.FamilyMembers[n], nil
				}
			}
			if err != nil {
				c.fail("family", err)
				continue
			}
			d.id, d.ok = a.PersonID, true
			c.seen(a.Position, false)
			added++
		}
		c.mu.Lock()
		c.sum.Counts.Dependants += added
		if added > 0 {
			c.sum.Counts.Families++
		}
		c.mu.Unlock()
	})
	return ctx.Err()
}

// buildVenues has each venue's manager apply (POST /v1/venues), a reviewer
// review it, the manager fetch the approved code to print
// (GET /v1/venues/{id}) and add a sub-admin; each venue's scanner gets its
// token.
func (c *citySim) buildVenues(ctx context.Context) error {
	for _, i := range c.adults { // the first registered (none: every registration was refused)
		if p := c.people[i]; p.ok {
			if err := c.waitRead(ctx, "/v1/persons/"+p.id.String()); err != nil {
				return fmt.Errorf("wait for the read models: %w", err)
			}
			break
		}
	}
	known, err := c.knownVenues(ctx)
	if err != nil {
		return err
	}
	bar := c.bar(len(c.venues), "venues")
	parallel(ctx, c.o.conc, len(c.venues), func(i int) {
		defer bar.Add(1)
		v := c.venues[i]
		m := c.people[v.manager]
		if !m.ok {
			return
		}
		var a writeAnswer
		old, resumed := known[v.name]
		if resumed && old.ManagerID == m.id {
			v.id = old.ID // applied by an earlier run or attempt
		} else {
			resumed = false
			_, _, err := c.api.do(ctx, "POST", "/v1/venues", m.token, jsonBody(map[string]any{
				"name": v.name, "type": v.typ, "district": cityDistricts[v.district].code, "address": v.address,
				"lat": round5(v.lat), "lng": round5(v.lng),
			}), &a)
			if err != nil {
				c.fail("venue", err)
				return
			}
			v.id = a.VenueID
			c.seen(a.Position, false)
		}
		c.mu.Lock()
		c.sum.Counts.Venues++
		c.sum.Counts.VenueTypes[v.typ]++
		c.mu.Unlock()
		if v.review == "" {
			return
		}
		if resumed && old.Status != domain.VenueStatusPending {
			a.Position = c.maxPos.Load() // reviewed by an earlier run
		} else {
			review := map[string]string{"decision": v.review}
			if v.review == domain.ReviewReject {
				review["reason"] = "地址与营业执照不符"
			}
			if _, _, err := c.api.do(ctx, "POST", "/v1/venues/"+v.id.String()+"/review", c.reviewr, jsonBody(review), &a); err != nil && !isConflict(err) {
				c.fail("venue review", err)
				return
			}
			c.seen(a.Position, false)
		}
		if v.review == domain.ReviewReject {
			c.mu.Lock()
			c.sum.Counts.VenueRejects++
			c.mu.Unlock()
			return
		}
		var got struct {
			Code string `json:"code"`
		}
		if _, _, err := c.api.do(ctx, "GET", fmt.Sprintf("/v1/venues/%s?min_position=%d", v.id, a.Position), m.token, nil, &got); err != nil || got.Code == "" {
			c.fail("venue code", errors.Join(err, errors.New("no code")))
			return
		}
		scanner, err := c.signer.IssueBearer(domain.Actor{Role: domain.RoleScanner, VenueID: v.id, Subject: "scanner:" + v.id.String()}, 24*time.Hour)
		if err != nil {
			c.fail("scanner token", err)
			return
		}
		v.code, v.scanner, v.ok = got.Code, scanner, true
		c.mu.Lock()
		c.sum.Counts.Approved++
		c.sum.Counts.CodesIssued++
		c.mu.Unlock()
		if v.subAdmin >= 0 && c.people[v.subAdmin].ok {
			_, _, err := c.api.do(ctx, "POST", "/v1/venues/"+v.id.String()+"/admins", m.token,
				jsonBody(map[string]string{"person_id": c.people[v.subAdmin].id.String()}), &a)
			if err != nil && !isConflict(err) {
				c.fail("sub-admin", err)
				return
			}
			c.seen(a.Position, false)
			c.mu.Lock()
			c.sum.Counts.SubAdmins++
			c.mu.Unlock()
		}
	})
	_ = bar.Finish()
	return ctx.Err()
}

// knownVenue is a venue the server already holds.
type knownVenue struct {
	ID        uuid.UUID `json:"venue_id"`
	Name      string    `json:"name"`
	Status    string    `json:"status"`
	ManagerID uuid.UUID `json:"manager_id"`
}

// knownVenues lists the venues the server holds by name (GET /v1/venues,
// per district), so that a second run, or one resumed after a crash,
// applies for no venue twice: an application carries no event id.
func (c *citySim) knownVenues(ctx context.Context) (map[string]knownVenue, error) {
	known := map[string]knownVenue{}
	for _, d := range cityDistricts {
		var page struct {
			Venues []knownVenue `json:"venues"`
		}
		if _, _, err := c.api.do(ctx, "GET", "/v1/venues?limit=1000&district="+d.code, c.reviewr, nil, &page); err != nil {
			return nil, fmt.Errorf("list venues: %w", err)
		}
		for _, v := range page.Venues {
			known[v.Name] = v
		}
	}
	return known, nil
}

func round5(x float64) float64 { return float64(int64(x*1e5)) / 1e5 }

// healthFeed posts everyone's health status: green with a recent negative
// test, a few yellow and red codes. The ledger takes each record at the
// time it arrives, so the history's passes (all earlier) were decided on
// what it knew then (nothing), and the codes tell from the live phase on.
func (c *citySim) healthFeed(ctx context.Context) error {
	rng := c.rng(rngPeople, 1)
	var recs []map[string]any
	var yellow, red int
	for _, p := range c.people {
		if !p.ok {
			continue
		}
		r := map[string]any{"id_type": idcard.ResidentID, "id_number": p.idNumber, "code_colour": p.colour,
			"nat_result": domain.NATNegative, "nat_at": c.o.end.Add(-time.Duration(2+rng.IntN(46)) * time.Hour).UTC().Format(time.RFC3339),
			"vaccine_doses": rng.IntN(4)}
		switch p.colour {
		case domain.ColourYellow:
			yellow++
		case domain.ColourRed:
			red++
			r["nat_result"] = domain.NATPositive
		}
		recs = append(recs, r)
	}
	for len(recs) > 0 {
		n := min(len(recs), 5000)
		var a struct {
			Accepted int    `json:"accepted"`
			Position uint64 `json:"position"`
		}
		if _, _, err := c.api.do(ctx, "POST", "/v1/health-status", c.feed, jsonBody(map[string]any{"records": recs[:n]}), &a); err != nil {
			c.fail("health", err)
		} else {
			c.seen(a.Position, false)
			c.mu.Lock()
			c.sum.Counts.Health += a.Accepted
			c.mu.Unlock()
		}
		recs = recs[n:]
	}
	c.mu.Lock()
	c.sum.Counts.Yellow, c.sum.Counts.Red = yellow, red
	c.mu.Unlock()
	return ctx.Err()
}
