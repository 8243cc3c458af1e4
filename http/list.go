package http

import (
	"context"
	"net/http"
	"net/url"
	"slices"

	"github.com/checkin-ledger/ledger/domain"
)

// list answers a list route in the one shape they all share: parse the
// query into a filter (bad input, a query that does not decode included, is
// refused before anything is read), read
// the read models' position (after min_position, so the answer is at least
// that fresh), fetch the items, and render them (an empty list, never null)
// with the position.
func list[F, T any](s *Server, w http.ResponseWriter, r *http.Request,
	parse func(*http.Request) (F, error),
	fetch func(context.Context, F) ([]T, error),
	render func(f F, items []T, position uint64) any,
) error {
	// url.Values drops a pair it cannot decode ("cursor=%%%"): a filter
	// the caller asked for would silently not apply.
	if _, err := url.ParseQuery(r.URL.RawQuery); err != nil {
		return domain.Invalid("query", "is not a valid URL query: %v", err)
	}
	f, err := parse(r)
	if err != nil {
		return err
	}
	pos, err := s.readPosition(r)
	if err != nil {
		return err
	}
	items, err := fetch(r.Context(), f)
	if err != nil {
		return err
	}
	if items == nil {
		items = []T{}
	}
	return writeJSON(w, http.StatusOK, render(f, items, pos))
}

// districtParam checks a district query parameter: a 6-digit
// administrative division code, or "" when not required.
func districtParam(district string, required bool) error {
	if district == "" && !required {
		return nil
	}
	if !domain.ValidDistrict(district) {
		return domain.Invalid("district", "must be a 6-digit administrative division code")
	}
	return nil
}

// oneOf checks an optional enumerated query parameter: "" or one of
// allowed, refused with reason otherwise.
func oneOf(field, value, reason string, allowed ...string) error {
	if value == "" || slices.Contains(allowed, value) {
		return nil
	}
	return domain.Invalid(field, "%s", reason)
}

// queryCursor reads the cursor query parameter; absent, it is the zero
// cursor (the first page).
func queryCursor(r *http.Request) (cursor, error) {
	c := r.URL.Query().Get("cursor")
	if c == "" {
		return cursor{}, nil
	}
	return parseCursor(c)
}
