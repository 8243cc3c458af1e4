package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/checkin-ledger/ledger/domain"
)

// parseDwell reads "restaurant=2h,hotel=12h" into a dwell function that
// falls back to domain.DefaultDwell for the types it does not name.
func parseDwell(s string) (func(venueType string) time.Duration, error) {
	overrides := map[string]time.Duration{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, val, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("--dwell: %q is not type=duration", part)
		}
		d, err := time.ParseDuration(strings.TrimSpace(val))
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("--dwell: %q: want a positive duration like 2h", part)
		}
		overrides[strings.TrimSpace(name)] = d
	}
	return func(venueType string) time.Duration {
		if d, ok := overrides[venueType]; ok {
			return d
		}
		return domain.DefaultDwell(venueType)
	}, nil
}
