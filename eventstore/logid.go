package eventstore

import (
	"context"
	"fmt"
	"time"
)

// LogID names the log this store holds: the stream's name and its creation
// time ("LEDGER@2026-12-01T10:00:00.123456789Z"). It stays the same across
// restarts, and in a cluster on every node (the time is the stream
// assignment's); a stream deleted and created again, or another
// deployment's, has another. The read models record it
// (projections.LogIdentifier) and refuse tables built from another log.
func (s *Store) LogID(ctx context.Context) (string, error) {
	if s.isClosed() {
		return "", ErrClosed
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	info, err := s.streamInfo(ctx, s.stream)
	if err != nil {
		return "", fmt.Errorf("log id: stream info: %w", err)
	}
	return StreamName + "@" + info.Created.UTC().Format(time.RFC3339Nano), nil
}
