package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/domain/idcard"
	"github.com/checkin-ledger/ledger/token"
)

// cityPass is one planned pass of the history.
type cityPass struct {
	at     time.Time
	person int
	venue  int
	dir    string
	family []int // dependants passing with their guardian
	key    string
}

// passAnswer is POST /v1/passes' answer, as far as the simulator reads it.
type passAnswer struct {
	Position  uint64 `json:"position"`
	Decision  string `json:"decision"`
	Duplicate bool   `json:"duplicate"`
	Family    []struct {
		Decision string `json:"decision"`
	} `json:"family"`
}

// planDay lays out the passes of one local day: for every adult, leaving
// home, the commute (a bus now and then), work with a lunch out, an errand
// or an evening shop (with the children or a grandparent at times), a
// doctor's visit or a day out, home again; children at school and
// grandparents at their elderly care, entered by the staff. A few exits are
// never scanned. Only passes inside (from, to] are kept.
func (c *citySim) planDay(day int, midnight, from, to time.Time) (passes []cityPass, missing int) {
	weekend := midnight.Weekday() == time.Saturday || midnight.Weekday() == time.Sunday
	pick := func(rng *rand.Rand, types []string, district int) int {
		var cand []int
		for _, t := range types {
			for _, i := range c.byType[t] {
				if c.venues[i].ok && c.venues[i].district == district {
					cand = append(cand, i)
				}
			}
		}
		if len(cand) == 0 {
			for _, t := range types {
				for _, i := range c.byType[t] {
					if c.venues[i].ok {
						cand = append(cand, i)
					}
				}
			}
		}
		if len(cand) == 0 {
			return -1
		}
		return cand[rng.IntN(len(cand))]
	}
	minutes := func(rng *rand.Rand, lo, hi int) time.Duration {
		return time.Duration(lo+rng.IntN(hi-lo+1)) * time.Minute
	}
	for pi, p := range c.people {
		if !p.ok || p.token == "" && p.guardian < 0 {
			continue
		}
		rng := c.rng(rngDay, day<<24|pi)
		seq := 0
		add := func(venue int, at time.Time, dir string, family []int, mayMiss bool) {
			seq++
			if venue < 0 || !c.venues[venue].ok {
				return
			}
			if mayMiss && rng.Float64() < shareMissingOut {
				if at.After(from) && !at.After(to) {
					missing++
				}
				return
			}
			if !at.After(from) || at.After(to) {
				return
			}
			passes = append(passes, cityPass{at: at, person: pi, venue: venue, dir: dir, family: family, key: fmt.Sprintf("pass/%d/%d/%d", pi, day, seq)})
		}
		visit := func(venue int, in, out time.Time, family []int) {
			add(venue, in, domain.DirectionIn, family, false)
			add(venue, out, domain.DirectionOut, family, true)
		}
		if p.guardian >= 0 { // a dependant: school or elderly care, entered by the staff
			if p.work >= 0 && (!weekend || p.relation == domain.RelationGrandparent) {
				in := midnight.Add(7*time.Hour + minutes(rng, 20, 60))
				visit(p.work, in, midnight.Add(16*time.Hour+minutes(rng, 0, 60)), nil)
			}
			continue
		}
		var withMe []int
		for _, d := range p.dependants {
			if c.people[d].ok {
				withMe = append(withMe, d)
			}
		}
		cur := midnight.Add(6*time.Hour + 30*time.Minute + minutes(rng, 0, 150))
		add(p.home, cur, domain.DirectionOut, nil, false)
		bus := func() {
			if rng.Float64() < 0.35 {
				b := pick(rng, []string{"public_transport"}, p.district)
				in := cur.Add(minutes(rng, 2, 10))
				out := in.Add(minutes(rng, 10, 40))
				visit(b, in, out, nil)
				cur = out
			}
		}
		switch {
		case p.work >= 0 && (!weekend || rng.Float64() < 0.25):
			bus()
			in := cur.Add(minutes(rng, 3, 20))
			out := midnight.Add(17*time.Hour + minutes(rng, 0, 120))
			if !out.After(in) {
				out = in.Add(4 * time.Hour)
			}
			if rng.Float64() < 0.35 { // lunch out
				noon := midnight.Add(11*time.Hour + 50*time.Minute + minutes(rng, 0, 20))
				back := noon.Add(minutes(rng, 25, 55))
				if noon.After(in) && out.After(back) {
					visit(p.work, in, noon, nil)
					visit(pick(rng, []string{"restaurant"}, c.venues[p.work].district), noon.Add(3*time.Minute), back.Add(-3*time.Minute), nil)
					in = back
				}
			}
			visit(p.work, in, out, nil)
			cur = out
			bus()
		case rng.Float64() < 0.04: // a doctor's visit
			cur = midnight.Add(8*time.Hour + minutes(rng, 0, 180))
			out := cur.Add(minutes(rng, 40, 200))
			visit(pick(rng, []string{"hospital"}, p.district), cur, out, nil)
			cur = out
		case rng.Float64() < 0.5: // an errand or a day out
			types := []string{"service_hall", "government", "pharmacy", "public_institution", "other"}
			if weekend {
				types = []string{"tourist_site", "museum", "library", "cultural_center", "entertainment", "mall"}
			}
			cur = midnight.Add(9*time.Hour + minutes(rng, 0, 240))
			out := cur.Add(minutes(rng, 20, 150))
			visit(pick(rng, types, p.district), cur, out, nil)
			cur = out
		}
		if rng.Float64() < 0.5 { // the evening shop
			shop := pick(rng, []string{"supermarket", "supermarket", "farmers_market", "restaurant", "restaurant", "mall", "pharmacy"}, p.district)
			in := cur.Add(minutes(rng, 10, 40))
			if m := midnight.Add(18 * time.Hour); in.Before(m) && p.work >= 0 {
				in = m.Add(minutes(rng, 0, 60))
			}
			var family []int
			if len(withMe) > 0 && rng.Float64() < 0.4 {
				family = withMe
			}
			out := in.Add(minutes(rng, 15, 90))
			visit(shop, in, out, family)
			cur = out
		}
		if rng.Float64() < 0.005 { // a night in a hotel
			hotel := pick(rng, []string{"hotel", "guesthouse"}, rng.IntN(len(cityDistricts)))
			in := cur.Add(minutes(rng, 20, 60))
			visit(hotel, in, midnight.Add(24*time.Hour+7*time.Hour+minutes(rng, 0, 90)), nil)
			continue
		}
		add(p.home, cur.Add(minutes(rng, 10, 40)), domain.DirectionIn, nil, false)
	}
	return passes, missing
}

// history sends --days of passes ending at --end, day by day: the online
// scans one at a time as they happened (self scans of the venue's code,
// staff entries for those without a phone), then each offline scanner's
// day in batches (staff scans of personal codes read at the time, manual
// entries), as a scanner that comes back online uploads them.
func (c *citySim) history(ctx context.Context) error {
	if first := c.firstVenue(); first != uuid.Nil { // none: no venue was approved
		if err := c.waitRead(ctx, "/v1/venues/"+first.String()); err != nil {
			return fmt.Errorf("wait for the read models: %w", err)
		}
	}
	zone := time.FixedZone("CST", cityZoneOffset)
	to := c.o.end.Add(-time.Minute)
	from := c.o.end.Add(-time.Duration(c.o.days) * 24 * time.Hour)
	first := from.In(zone)
	midnight := time.Date(first.Year(), first.Month(), first.Day(), 0, 0, 0, 0, zone)
	var days [][]cityPass
	total := 0
	for day := 0; !midnight.After(to); day++ {
		ps, missing := c.planDay(day, midnight, from, to)
		slices.SortStableFunc(ps, func(a, b cityPass) int { return a.at.Compare(b.at) })
		days = append(days, ps)
		c.sum.Counts.Passes.MissingExits += missing
		total += len(ps)
		midnight = midnight.AddDate(0, 0, 1)
	}
	bar := c.bar(total, "history passes")
	t0 := time.Now()
	pc := &c.sum.Counts.Passes
	for _, ps := range days {
		var online []cityPass
		offline := map[int][]cityPass{}
		for _, p := range ps {
			if c.venues[p.venue].offline {
				offline[p.venue] = append(offline[p.venue], p)
			} else {
				online = append(online, p)
			}
		}
		parallel(ctx, c.o.conc, len(online), func(i int) {
			c.sendHistoryPass(ctx, pc, online[i])
			_ = bar.Add(1)
		})
		venues := make([]int, 0, len(offline))
		for v := range offline {
			venues = append(venues, v)
		}
		slices.Sort(venues)
		var batches [][]cityPass
		for _, v := range venues {
			for chunk := range slices.Chunk(offline[v], domain.MaxBatchPasses) {
				batches = append(batches, chunk)
			}
		}
		parallel(ctx, c.o.conc, len(batches), func(i int) {
			c.sendBatch(ctx, pc, batches[i])
			_ = bar.Add(len(batches[i]))
		})
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	_ = bar.Finish()
	c.mu.Lock()
	if s := time.Since(t0).Seconds(); s > 0 {
		c.sum.BuildPassesS = float64(int(float64(pc.Sent) / s))
	}
	c.mu.Unlock()
	return nil
}

func (c *citySim) firstVenue() uuid.UUID {
	for _, v := range c.venues {
		if v.ok {
			return v.id
		}
	}
	return uuid.Nil
}

// sendHistoryPass sends one online pass: a self scan with the venue's code
// (and the dependants with their guardian), or for a dependant a manual
// entry by the venue's scanner.
func (c *citySim) sendHistoryPass(ctx context.Context, pc *passCounts, p cityPass) {
	person, venue := c.people[p.person], c.venues[p.venue]
	at := p.at.UTC().Format(time.RFC3339)
	if person.guardian >= 0 {
		body := jsonBody(map[string]string{"method": domain.MethodManual, "venue_id": venue.id.String(), "id_type": idcard.ResidentID,
			"id_number": person.idNumber, "direction": p.dir, "event_id": c.eventID("%s", p.key), "occurred_at": at})
		c.sendPass(ctx, pc, &c.passLat, venue.scanner, body, 1, "manual")
		return
	}
	req := map[string]any{"method": domain.MethodSelfScan, "venue_code": venue.code, "direction": p.dir,
		"event_id": c.eventID("%s", p.key), "occurred_at": at}
	if len(p.family) > 0 {
		ids := make([]string, len(p.family))
		for i, d := range p.family {
			ids[i] = c.people[d].id.String()
		}
		req["family_member_ids"] = ids
	}
	c.sendPass(ctx, pc, &c.passLat, person.token, jsonBody(req), 1+len(p.family), domain.MethodSelfScan)
}

// sendPass posts one pass (n people: a guardian and dependants) and counts
// the answer.
func (c *citySim) sendPass(ctx context.Context, pc *passCounts, lat *latencies, bearer string, body []byte, n int, method string) {
	var a passAnswer
	_, took, err := c.api.do(ctx, "POST", "/v1/passes", bearer, body, &a)
	if err == nil {
		lat.add(took)
		c.seen(a.Position, a.Duplicate)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	pc.Requests++
	pc.Sent += n
	pc.Family += n - 1
	switch method {
	case domain.MethodManual:
		pc.Manual += n
	case domain.MethodStaffScan:
		pc.StaffScans += n
	}
	if err != nil {
		pc.Rejected += n
		c.failLocked("pass", err)
		return
	}
	c.countDecision(pc, a.Decision)
	for _, f := range a.Family {
		c.countDecision(pc, f.Decision)
	}
}

func (c *citySim) countDecision(pc *passCounts, decision string) {
	pc.Accepted++
	if decision == domain.DecisionDeny {
		pc.Deny++
	} else {
		pc.Pass++
	}
}

// failLocked is fail with c.mu held.
func (c *citySim) failLocked(what string, err error) {
	c.mu.Unlock()
	c.fail(what, err)
	c.mu.Lock()
}

// sendBatch uploads an offline scanner's passes (POST /v1/passes/batch):
// staff scans of the personal codes people showed at the time (a code is
// valid for minutes from when the phone made it, and is checked at the
// pass's time), manual entries for those without a phone.
func (c *citySim) sendBatch(ctx context.Context, pc *passCounts, ps []cityPass) {
	venue := c.venues[ps[0].venue]
	items := make([]map[string]any, 0, len(ps))
	staff := 0
	for _, p := range ps {
		person := c.people[p.person]
		at := p.at.UTC().Format(time.RFC3339)
		if person.guardian >= 0 {
			items = append(items, map[string]any{"method": domain.MethodManual, "venue_id": venue.id.String(), "id_type": idcard.ResidentID,
				"id_number": person.idNumber, "direction": p.dir, "event_id": c.eventID("%s", p.key), "occurred_at": at})
			continue
		}
		code, err := c.codeAt(person.id, p.at.Add(-20*time.Second))
		if err != nil {
			c.fail("personal code", err)
			continue
		}
		staff++
		items = append(items, map[string]any{"method": domain.MethodStaffScan, "venue_id": venue.id.String(), "personal_code": code,
			"direction": p.dir, "occurred_at": at})
		for _, d := range p.family { // dependants are entered by hand beside their guardian
			items = append(items, map[string]any{"method": domain.MethodManual, "venue_id": venue.id.String(), "id_type": idcard.ResidentID,
				"id_number": c.people[d].idNumber, "direction": p.dir, "event_id": c.eventID("%s/%d", p.key, d), "occurred_at": at})
		}
	}
	var a struct {
		Results []struct {
			Status   string    `json:"status"`
			Decision string    `json:"decision"`
			Error    *apiError `json:"error"`
		} `json:"results"`
		Position uint64 `json:"position"`
	}
	_, took, err := c.api.do(ctx, "POST", "/v1/passes/batch", venue.scanner, jsonBody(map[string]any{"passes": items}), &a)
	if err == nil {
		c.passLat.add(took)
		c.seen(a.Position, false)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	pc.Requests++
	pc.Batches++
	pc.Sent += len(items)
	pc.Offline += len(items)
	pc.StaffScans += staff
	pc.Manual += len(items) - staff
	if err != nil {
		pc.Rejected += len(items)
		c.failLocked("batch", err)
		return
	}
	for _, r := range a.Results {
		switch r.Status {
		case domain.BatchAccepted, domain.BatchDuplicate:
			c.countDecision(pc, r.Decision)
			if r.Status == domain.BatchDuplicate {
				c.sum.Duplicates++
			}
		default:
			pc.Rejected++
			e := r.Error
			if e == nil {
				e = &apiError{Type: r.Status}
			}
			c.failLocked("batch item", e)
		}
	}
}

// codeAt is the personal code a person's phone showed at t: what a scanner
// that was offline read then.
func (c *citySim) codeAt(person uuid.UUID, t time.Time) (string, error) {
	s, err := token.NewSigner(c.key, func() time.Time { return t })
	if err != nil {
		return "", err
	}
	code, _ := s.IssuePersonalCode(person)
	return code, nil
}

// declarations has a few people declare an arrival (with their family at
// times) and the drivers of logistics and cold-chain sites file truck
// passes; a reviewer approves most, rejects some and leaves some pending.
func (c *citySim) declarations(ctx context.Context) error {
	rng := c.rng(rngDecl, 0)
	type decl struct {
		path   string
		body   []byte
		bearer string
		truck  bool
		review string
	}
	var ds []decl
	review := func() string {
		switch x := rng.Float64(); {
		case x < 0.1:
			return domain.ReviewReject
		case x < 0.2:
			return ""
		}
		return domain.ReviewApprove
	}
	today := c.o.end.In(time.FixedZone("CST", cityZoneOffset))
	arrivals, trucks := 0, 0
	for k, i := range c.adults {
		p := c.people[i]
		if !p.ok || p.verify == domain.VerifyRejected {
			continue
		}
		if rng.Float64() < shareArrivals || arrivals == 0 {
			arrivals++
			req := map[string]any{"arrival_date": today.AddDate(0, 0, -rng.IntN(4)).Format(time.DateOnly), "origin": origins[rng.IntN(len(origins))],
				"destination_district": cityDistricts[p.district].code, "nat_result": domain.NATNegative,
				"nat_at": c.o.end.Add(-time.Duration(20+rng.IntN(40)) * time.Hour).UTC().Format(time.RFC3339), "event_id": c.eventID("arrival/%d", k)}
			if len(p.dependants) > 0 && rng.IntN(2) == 0 {
				var ids []string
				for _, d := range p.dependants {
					if c.people[d].ok {
						ids = append(ids, c.people[d].id.String())
					}
				}
				if len(ids) > 0 {
					req["family_member_ids"] = ids
				}
			}
			ds = append(ds, decl{"/v1/declarations/arrival", jsonBody(req), p.token, false, review()})
		}
		if w := p.work; w >= 0 && (c.venues[w].typ == "logistics" || c.venues[w].typ == "cold_chain") && (rng.IntN(2) == 0 || trucks == 0) {
			trucks++
			colour := p.colour
			ds = append(ds, decl{"/v1/declarations/truck", jsonBody(map[string]any{
				"plate_number": fmt.Sprintf("鲁Q%05d", rng.IntN(100000)), "nat_proof_at": c.o.end.Add(-time.Duration(1+rng.IntN(20)) * time.Hour).UTC().Format(time.RFC3339),
				"itinerary_ok": true, "health_code_colour": colour, "logistics_park": c.venues[w].name, "district": cityDistricts[c.venues[w].district].code,
				"contact_name": p.name, "contact_phone": p.phone, "event_id": c.eventID("truck/%d", k),
			}), p.token, true, review()})
		}
	}
	ids := make([]uuid.UUID, len(ds))
	parallel(ctx, c.o.conc, len(ds), func(i int) {
		var a writeAnswer
		if _, _, err := c.api.do(ctx, "POST", ds[i].path, ds[i].bearer, ds[i].body, &a); err != nil {
			c.fail("declaration", err)
			return
		}
		c.seen(a.Position, a.Duplicate)
		c.mu.Lock()
		ids[i] = a.DeclarationID
		if ds[i].truck {
			c.sum.Counts.Declarations.Truck++
		} else {
			c.sum.Counts.Declarations.Arrival++
		}
		c.mu.Unlock()
	})
	parallel(ctx, c.o.conc, len(ds), func(i int) {
		if ids[i] == uuid.Nil {
			return
		}
		d := &c.sum.Counts.Declarations
		if ds[i].review == "" {
			c.mu.Lock()
			d.Pending++
			c.mu.Unlock()
			return
		}
		body := map[string]string{"decision": ds[i].review}
		if ds[i].review == domain.ReviewReject {
			body["reason"] = "核酸检测报告无法核验"
		}
		var a writeAnswer
		if _, _, err := c.api.do(ctx, "POST", "/v1/declarations/"+ids[i].String()+"/review", c.reviewr, jsonBody(body), &a); err != nil && !isConflict(err) {
			c.fail("declaration review", err)
			return
		}
		c.seen(a.Position, false)
		c.mu.Lock()
		if ds[i].review == domain.ReviewApprove {
			d.Approved++
		} else {
			d.Rejected++
		}
		c.mu.Unlock()
	})
	return ctx.Err()
}
