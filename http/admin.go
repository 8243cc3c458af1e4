package http

import (
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger"
)

// The ledger's administrative routes: the reactions' poison queue.

type poisonListResponse struct {
	Entries []poisonMessageJSON `json:"entries"`
}

type poisonRetryResponse struct {
	ID      uint64 `json:"id"`
	Retried bool   `json:"retried"`
}

// poisonQueue returns the reactions' poison queue, unavailable when the
// service runs no reactions.
func (s *Server) poisonQueue() (ledger.PoisonQueue, error) {
	if s.opts.Poison == nil {
		return nil, errUnavailableWith("this service runs no reactions")
	}
	return s.opts.Poison, nil
}

// listPoison is GET /v1/admin/poison: the reactions that kept failing,
// oldest first, with the reason and the original events.
func (s *Server) listPoison(w http.ResponseWriter, r *http.Request) error {
	limit, err := queryLimit(r, 100, 1000)
	if err != nil {
		return err
	}
	pq, err := s.poisonQueue()
	if err != nil {
		return err
	}
	entries, err := pq.Poisoned(r.Context(), limit)
	if err != nil {
		return err
	}
	if entries == nil {
		entries = []ledger.PoisonMessage{}
	}
	return writeJSON(w, http.StatusOK, poisonListResponse{Entries: mapSlice(entries, poisonMessageOf)})
}

// retryPoison is POST /v1/admin/poison/{id}/retry: runs the entry's
// reaction again; on success the entry leaves the queue, otherwise the
// answer is a conflict that says why.
func (s *Server) retryPoison(w http.ResponseWriter, r *http.Request) error {
	id, err := strconv.ParseUint(chi.URLParam(r, "id"), 10, 64)
	if err != nil || id == 0 {
		return domain.Invalid("id", "must be a poison entry id (a positive whole number)")
	}
	pq, err := s.poisonQueue()
	if err != nil {
		return err
	}
	if err := pq.RetryPoisoned(r.Context(), id); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, poisonRetryResponse{ID: id, Retried: true})
}
