package http

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/checkin-ledger/ledger/domain"
)

// list answers a list route in the one shape they all share: parse the
// query into a filter (bad input is refused before anything is read; a
// query that does not decode never gets here: oneQuery), read
// the read models' position (after min_position, so the answer is at least
// that fresh), fetch the items, and render them (an empty list, never null)
// with the position.
func list[F, T any](s *Server, w http.ResponseWriter, r *http.Request,
	parse func(*http.Request) (F, error),
	fetch func(context.Context, F) ([]T, error),
	render func(f F, items []T, position uint64) any,
) error {
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

// pageJSON is one page of a list read with a cursor: its entries, the
// cursor of the next page when this one is full, and the read models'
// position.
type pageJSON[T any] struct {
	Entries    []T    `json:"entries"`
	NextCursor string `json:"next_cursor,omitempty"`
	Position   uint64 `json:"position"`
}

// pageOf renders a page of entries read with limit: each entry through
// render, and when the page is full, the next one's cursor after the last
// entry (next).
func pageOf[V, T any](entries []V, limit int, position uint64, render func(V) T, next func(V) cursor) pageJSON[T] {
	page := pageJSON[T]{Entries: mapSlice(entries, render), Position: position}
	if n := len(entries); n == limit {
		page.NextCursor = next(entries[n-1]).String()
	}
	return page
}

// districtScope is the district a read covers: the district query
// parameter (a 6-digit administrative division code; "" when not required),
// narrowed by domain.DistrictScope for a token bound to one district.
func districtScope(r *http.Request, required bool) (string, error) {
	asked := r.URL.Query().Get("district")
	if (asked != "" || required) && !domain.ValidDistrict(asked) {
		return "", domain.Invalid("district", "must be a 6-digit administrative division code")
	}
	return domain.DistrictScope(actorOf(r), asked)
}

// oneOf checks an optional enumerated query parameter: "" or one of
// allowed, refused with reason otherwise.
func oneOf(field, value, reason string, allowed ...string) error {
	if value == "" || slices.Contains(allowed, value) {
		return nil
	}
	return domain.Invalid(field, "%s", reason)
}

// takes is the gate of every /v1 route (routes): it refuses a query
// parameter the route does not take (names, its table's list): a typo
// (`distrct=`, `Person=` for `person=`) would otherwise answer the whole
// city or trail, as if unfiltered on purpose. The name is echoed only when
// it is shaped like ours (paramName).
func (s *Server) takes(names []string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.RawQuery != "" { // a pass: nothing to check
				if err := onlyParams(r, names); err != nil {
					s.writeError(w, r, err)
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}

func onlyParams(r *http.Request, names []string) error {
	for _, k := range slices.Sorted(maps.Keys(r.URL.Query())) { // the first by name, the same each time
		if slices.Contains(names, k) {
			continue
		}
		if !paramName(k) {
			return domain.Invalid("query", "has a parameter this route does not take (the name is not repeated here)")
		}
		if len(names) == 0 {
			return domain.Invalid(k, "is not a parameter of this route (it takes none)")
		}
		return domain.Invalid(k, "is not a parameter of this route (it takes %s)", strings.Join(names, ", "))
	}
	return nil
}

// queryCursor reads the cursor query parameter; absent, it is the zero
// cursor (the first page).
func queryCursor(r *http.Request) (cursor, error) {
	c := r.URL.Query().Get("cursor")
	if c == "" {
		return cursor{}, nil
	}
	cur, err := parseCursor(c)
	if err == nil && cur.scope != scopeOf(r) {
		return cursor{}, domain.Invalid("cursor", "belongs to another list, or to this one with other filters: start again without it")
	}
	return cur, err
}
