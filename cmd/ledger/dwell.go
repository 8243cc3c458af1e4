package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/checkin-ledger/ledger/domain"
)

// parseDwell reads --dwell "restaurant=2h,hotel=12h" into a dwell function
// that falls back to domain.DefaultDwell for the types it does not name.
func parseDwell(s string) (func(venueType string) time.Duration, error) {
	return parsePerType("--dwell", s, domain.DefaultDwell)
}

// parseMaxStay reads --max-stay "hotel=336h" into a maximum-stay function
// that falls back to domain.DefaultMaxStay.
func parseMaxStay(s string) (func(venueType string) time.Duration, error) {
	return parsePerType("--max-stay", s, domain.DefaultMaxStay)
}

// parsePerType reads "type=duration,…" for flag; an unknown venue type or a
// duration that is not positive is an error.
func parsePerType(flag, s string, fallback func(string) time.Duration) (func(venueType string) time.Duration, error) {
	overrides := map[string]time.Duration{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, val, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("%s: %q is not type=duration", flag, part)
		}
		name = strings.TrimSpace(name)
		if !domain.IsVenueType(name) {
			return nil, fmt.Errorf("%s: %q is not a venue type (%s)", flag, name, strings.Join(domain.VenueTypes(), ", "))
		}
		d, err := time.ParseDuration(strings.TrimSpace(val))
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%s: %q: want a positive duration like 2h", flag, part)
		}
		overrides[name] = d
	}
	return func(venueType string) time.Duration {
		if d, ok := overrides[venueType]; ok {
			return d
		}
		return fallback(venueType)
	}, nil
}
