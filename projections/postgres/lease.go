package postgres

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/checkin-ledger/ledger/projections"
	"github.com/jackc/pgx/v5"
)

// LeaseOptions configure Store.Lease.
type LeaseOptions struct {
	// TryEvery is how often a standby tries the lock (default 500 ms).
	TryEvery time.Duration
	// CheckEvery is how often the holder checks that its connection (and
	// so its lock) is alive (default 1 s).
	CheckEvery time.Duration
	// IdleTimeout is how long the lock's session may go without the
	// holder's check before PostgreSQL ends it, and the lock with it
	// (idle_session_timeout; default 5 × CheckEvery, at least 1 s): a
	// holder frozen (SIGSTOP, a stalled VM) keeps its TCP connection alive,
	// since the kernel still answers keepalives, and would keep the lock
	// for as long as it is frozen.
	IdleTimeout time.Duration
}

// Lease returns the projection's lease for projections.Options.Lease: a
// session-level advisory lock, keyed by the schema and the projection's
// name, held on a connection of its own (not the pool's, which would hand
// the session to others). PostgreSQL releases it when that session ends,
// so a replica that dies — process killed, host gone once TCP keepalive
// gives up — frees it, and a standby takes it at its next try.
func (s *Store) Lease(o LeaseOptions) projections.Lease {
	if o.TryEvery <= 0 {
		o.TryEvery = 500 * time.Millisecond
	}
	if o.CheckEvery <= 0 {
		o.CheckEvery = time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = max(5*o.CheckEvery, time.Second)
	}
	return &lease{s: s, o: o}
}

type lease struct {
	s *Store
	o LeaseOptions
}

func (l *lease) key() string { return "ledger-projection:" + l.s.schema + "." + l.s.name }

// Acquire implements projections.Lease.
func (l *lease) Acquire(ctx context.Context) (context.Context, func(), error) {
	for {
		conn, err := l.connect(ctx)
		if err == nil {
			var got bool
			if err = conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtext($1)::bigint)`, l.key()).Scan(&got); err == nil && got {
				held, cancel := context.WithCancel(ctx)
				done := make(chan struct{})
				go l.watch(held, cancel, conn, done)
				return held, func() { cancel(); <-done }, nil
			}
			conn.Close(context.WithoutCancel(ctx))
		}
		t := time.NewTimer(l.o.TryEvery)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil, ctx.Err()
		case <-t.C:
		}
	}
}

func (l *lease) connect(ctx context.Context) (*pgx.Conn, error) {
	cfg := l.s.pool.Config().ConnConfig.Copy()
	// A dead peer is noticed in seconds, not after the kernel's 2 hours
	// (ignored on Unix sockets).
	for k, v := range map[string]string{"tcp_keepalives_idle": "5", "tcp_keepalives_interval": "2", "tcp_keepalives_count": "3",
		// A frozen holder (see LeaseOptions.IdleTimeout): PostgreSQL 14 and later.
		"idle_session_timeout": strconv.FormatInt(l.o.IdleTimeout.Milliseconds(), 10)} {
		cfg.RuntimeParams[k] = v
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("lease %s: connect: %w", l.key(), err)
	}
	return conn, nil
}

// watch pings the lock's connection until held ends, and cancels held when
// a ping fails (the session, and with it the lock, is gone). Then it gives
// the lock up and closes the connection.
func (l *lease) watch(held context.Context, lost context.CancelFunc, conn *pgx.Conn, done chan<- struct{}) {
	defer close(done)
	defer lost()
	t := time.NewTicker(l.o.CheckEvery)
	defer t.Stop()
	for {
		select {
		case <-held.Done():
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, _ = conn.Exec(ctx, `SELECT pg_advisory_unlock(hashtext($1)::bigint)`, l.key())
			conn.Close(ctx)
			cancel()
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(held, 2*time.Second)
		err := conn.Ping(ctx)
		cancel()
		if err != nil && held.Err() == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			conn.Close(ctx)
			cancel()
			return
		}
	}
}
