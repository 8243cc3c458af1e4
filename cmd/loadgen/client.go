package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// apiClient sends the city's requests. A request that meets a transient
// failure — a refused or broken connection (a server restarting), 503
// (start-up replay, a leader election), 429 (a rate limit), 502 or 504 — is
// sent again with the same body, so the same event id, until retryFor has
// passed: the server answers a retry of a stored event as its original, and
// the simulator counts each request once, by its final answer.
type apiClient struct {
	base     string
	hc       *http.Client
	retryFor time.Duration
	retries  atomic.Int64
	// limited is set once the server has answered 429, for one notice.
	limited atomic.Bool
	notice  func(string)
}

// apiError is a final answer that is not a success.
type apiError struct {
	Status int
	Type   string
	Detail string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, e.Type, e.Detail)
}

// kind names the problem for the summary's rejection counts: the last
// part of its type URI, or the status.
func (e *apiError) kind() string {
	if i := strings.LastIndexByte(e.Type, '/'); i >= 0 && i < len(e.Type)-1 {
		return e.Type[i+1:]
	}
	if e.Type != "" && e.Type != "about:blank" {
		return e.Type
	}
	return strconv.Itoa(e.Status)
}

// transient reports whether an answer is worth sending again.
func transient(status int) bool {
	switch status {
	case http.StatusServiceUnavailable, http.StatusTooManyRequests, http.StatusBadGateway, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// do sends one request (body nil: none) and decodes a successful answer
// into out. It returns the final status and the time the final attempt
// took.
func (c *apiClient) do(ctx context.Context, method, path, bearer string, body []byte, out any) (int, time.Duration, error) {
	deadline := time.Now().Add(c.retryFor)
	backoff := 100 * time.Millisecond
	for {
		t0 := time.Now()
		status, raw, header, err := c.once(ctx, method, path, bearer, body)
		took := time.Since(t0)
		if ctx.Err() != nil {
			return 0, took, ctx.Err()
		}
		if err == nil && !transient(status) {
			if status >= 300 {
				var p struct {
					Type   string `json:"type"`
					Title  string `json:"title"`
					Detail string `json:"detail"`
				}
				_ = json.Unmarshal(raw, &p)
				if p.Detail == "" {
					p.Detail = p.Title
				}
				return status, took, &apiError{Status: status, Type: p.Type, Detail: p.Detail}
			}
			if out != nil {
				if err := json.Unmarshal(raw, out); err != nil {
					return status, took, fmt.Errorf("%s %s: decode answer: %w", method, path, err)
				}
			}
			return status, took, nil
		}
		wait := backoff
		if err == nil {
			if s, perr := strconv.Atoi(header.Get("Retry-After")); perr == nil && s > 0 {
				wait = time.Duration(s) * time.Second
			}
			if status == http.StatusTooManyRequests && c.limited.CompareAndSwap(false, true) && c.notice != nil {
				c.notice("the server limits this kind of request (429; registrations: `ledger serve --register-rate 0` lifts it); waiting as it says")
			}
		}
		if time.Now().Add(wait).After(deadline) {
			if err != nil {
				return 0, took, fmt.Errorf("%s %s: gave up after %s: %w", method, path, c.retryFor, err)
			}
			return status, took, &apiError{Status: status, Type: "gave-up", Detail: fmt.Sprintf("still %d after %s", status, c.retryFor)}
		}
		c.retries.Add(1)
		select {
		case <-ctx.Done():
			return 0, took, ctx.Err()
		case <-time.After(wait):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

func (c *apiClient) once(ctx context.Context, method, path, bearer string, body []byte) (int, []byte, http.Header, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return 0, nil, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, raw, resp.Header, nil
}

// latencies collects request times for percentiles.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// percentilesMS are request times in milliseconds.
type percentilesMS struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
}

func (l *latencies) percentiles() percentilesMS {
	l.mu.Lock()
	d := slices.Clone(l.d)
	l.mu.Unlock()
	if len(d) == 0 {
		return percentilesMS{}
	}
	slices.Sort(d)
	ms := func(x time.Duration) float64 { return float64(x.Microseconds()) / 1000 }
	at := func(p float64) float64 { return ms(d[min(len(d)-1, int(float64(len(d))*p))]) }
	return percentilesMS{Count: len(d), P50: at(0.50), P90: at(0.90), P99: at(0.99), P999: at(0.999), Max: ms(d[len(d)-1])}
}

// parallel runs f(i) for every i < n on at most conc goroutines, until ctx
// ends.
func parallel(ctx context.Context, conc, n int, f func(i int)) {
	var (
		wg   sync.WaitGroup
		next atomic.Int64
	)
	for range min(conc, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
}
