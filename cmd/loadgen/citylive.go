package main

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/domain/idcard"
)

// live drives passes at --rate for --duration, now: mostly self scans, some
// staff scans of a personal code the person's phone fetched just then
// (GET /v1/persons/{id}/code), some manual entries. People with a yellow or
// red code are denied entry from here on (the health feed came first). At
// most -c requests are in flight; when the server cannot keep up, the rate
// reached is what the summary says.
func (c *citySim) live(ctx context.Context) error {
	var people, venues []int
	for _, i := range c.adults {
		if c.people[i].ok {
			people = append(people, i)
		}
	}
	for i, v := range c.venues {
		if v.ok && v.typ != "residential" {
			venues = append(venues, i)
		}
	}
	if len(people) == 0 || len(venues) == 0 {
		return nil
	}
	inside := make([]bool, len(c.people))
	var insideMu sync.Mutex
	run := time.Now().UnixNano() // live passes are new facts in every run
	ls := &liveSummary{Target: c.o.rate}
	total := int(c.o.rate * c.o.duration.Seconds())
	bar := c.bar(total, "live passes")
	jobs := make(chan int, c.o.conc)
	var wg sync.WaitGroup
	for range c.o.conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				rng := c.rng(rngLive, j)
				pi := people[rng.IntN(len(people))]
				insideMu.Lock()
				dir := domain.DirectionIn
				if inside[pi] {
					dir = domain.DirectionOut
				}
				inside[pi] = !inside[pi]
				insideMu.Unlock()
				c.livePass(ctx, ls, rng, pi, venues[rng.IntN(len(venues))], dir, c.eventID("live/%d/%d", run, j))
				_ = bar.Add(1)
			}
		}()
	}
	start := time.Now()
	deadline := start.Add(c.o.duration)
	sent := 0
loop:
	for {
		now := time.Now()
		if !now.Before(deadline) {
			break
		}
		due := int(now.Sub(start).Seconds() * c.o.rate)
		for ; sent < due; sent++ {
			select {
			case jobs <- sent:
			case <-ctx.Done():
				break loop
			case <-time.After(time.Until(deadline)):
				break loop
			}
		}
		time.Sleep(time.Millisecond)
	}
	close(jobs)
	wg.Wait()
	_ = bar.Finish()
	c.mu.Lock()
	defer c.mu.Unlock()
	ls.Seconds = round2(time.Since(start).Seconds())
	if ls.Seconds > 0 {
		ls.Rate = float64(int(float64(ls.Passes.Accepted) / ls.Seconds))
	}
	ls.Latency = c.liveLat.percentiles()
	c.sum.Live = ls
	return ctx.Err()
}

// livePass sends one live pass of person pi at venue vi.
func (c *citySim) livePass(ctx context.Context, ls *liveSummary, rng *rand.Rand, pi, vi int, dir, eventID string) {
	p, v := c.people[pi], c.venues[vi]
	switch x := rng.IntN(10); {
	case x == 0: // a staff scan of the code on the person's phone
		var code struct {
			Code string `json:"code"`
		}
		if _, _, err := c.api.do(ctx, "GET", "/v1/persons/"+p.id.String()+"/code", p.token, nil, &code); err != nil {
			c.fail("live personal code", err)
			return
		}
		body := jsonBody(map[string]string{"method": domain.MethodStaffScan, "venue_id": v.id.String(), "personal_code": code.Code, "direction": dir})
		c.sendPass(ctx, &ls.Passes, &c.liveLat, v.scanner, body, 1, domain.MethodStaffScan)
	case x == 1: // a manual entry by the staff
		body := jsonBody(map[string]string{"method": domain.MethodManual, "venue_id": v.id.String(), "id_type": idcard.ResidentID,
			"id_number": p.idNumber, "direction": dir, "event_id": eventID})
		c.sendPass(ctx, &ls.Passes, &c.liveLat, v.scanner, body, 1, domain.MethodManual)
	default:
		body := jsonBody(map[string]string{"method": domain.MethodSelfScan, "venue_code": v.code, "direction": dir, "event_id": eventID})
		c.sendPass(ctx, &ls.Passes, &c.liveLat, p.token, body, 1, domain.MethodSelfScan)
	}
}
