package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/checkin-ledger/ledger/eventstore"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/checkin-ledger/ledger/projections/postgres"
)

// projectionsStatus prints each projection's position and lag.
func projectionsStatus(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("projections status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ef := engineFlags{readOnly: true} // reads the log: changes no stream
	ef.register(fs, getenv)
	if err := fs.Parse(args); err != nil {
		return err
	}
	es, closeLog, err := ef.openLogForPostgres(ctx, stderr, getenv, "projections status: the in-memory read models live inside `ledger serve` (see /readyz)")
	if err != nil {
		return err
	}
	defer closeLog()
	pg, err := postgres.Open(ctx, postgres.Options{URL: ef.postgres})
	if err != nil {
		return err
	}
	defer pg.Close()
	last, err := es.LastPosition(ctx)
	if err != nil {
		return err
	}
	statuses, err := pg.Status(ctx, es)
	if err != nil {
		return err
	}
	logID, err := es.LogID(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROJECTION\tPOSITION\tLOG\tLAG EVENTS\tLAG SECONDS\tPARKED\tFOLLOWS")
	var mismatch []string
	for _, st := range statuses {
		follows := st.LogID
		switch {
		case follows == "":
			follows = "(not recorded yet)"
		case follows != logID:
			follows += " (NOT this log: " + logID + ")"
			mismatch = append(mismatch, st.Name)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.1f\t%d\t%s\n", st.Name, st.Position, last, st.LagEvents, st.LagSeconds, st.ParkedEvents, follows)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	parked, err := pg.ParkedEvents(ctx, 100)
	if err != nil {
		return err
	}
	if len(parked) > 0 {
		fmt.Fprintln(stdout, "\nparked events (the store could not hold them; the projection went on without them):")
		tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "POSITION\tEVENT ID\tTYPE\tPARKED AT\tREASON")
		for _, e := range parked {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", e.Position, e.EventID, e.Type, e.ParkedAt.UTC().Format(time.RFC3339), e.Reason)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "fix the cause (a build that can hold them), then `ledger projections rebuild` applies them again")
	}
	if len(mismatch) > 0 {
		return fmt.Errorf("projections %s were built from another log: run `ledger projections rebuild` against this one", strings.Join(mismatch, ", "))
	}
	return nil
}

// parseNameAndFlags parses `[flags] [NAME] [flags]`: the flag package stops
// at the first argument that is not a flag, so the flags after NAME are
// parsed in a second round. More than one NAME is an error.
func parseNameAndFlags(fs *flag.FlagSet, args []string) (string, error) {
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if fs.NArg() == 0 {
		return "", nil
	}
	name := fs.Arg(0)
	if err := fs.Parse(fs.Args()[1:]); err != nil {
		return "", err
	}
	if fs.NArg() > 0 {
		return "", fmt.Errorf("%s: unexpected arguments %q", fs.Name(), fs.Args())
	}
	return name, nil
}

// projectionsRebuild replays the log into fresh tables and swaps them in
// while readers keep reading the old ones.
func projectionsRebuild(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("projections rebuild", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ef := engineFlags{readOnly: true} // reads the log: changes no stream
	ef.register(fs, getenv)
	name, err := parseNameAndFlags(fs, args)
	if err != nil {
		return err
	}
	if name == "" {
		name = projections.DefaultName
	}
	if !slices.Contains(projections.Names, name) {
		return fmt.Errorf("projections rebuild: unknown projection %q (known: %s)", name, strings.Join(projections.Names, ", "))
	}
	es, closeLog, err := ef.openLogForPostgres(ctx, stderr, getenv, "projections rebuild: the in-memory read models are rebuilt at every start")
	if err != nil {
		return err
	}
	defer closeLog()

	var bar *progressbar.ProgressBar
	start := time.Now()
	progress := func(done, total uint64) {
		if bar == nil {
			bar = progressbar.NewOptions64(int64(total),
				progressbar.OptionSetWriter(stderr),
				progressbar.OptionSetDescription("rebuild "+name),
				progressbar.OptionShowCount(),
				progressbar.OptionShowIts(),
				progressbar.OptionSetItsString("events"),
				progressbar.OptionSetPredictTime(true),
				progressbar.OptionThrottle(200*time.Millisecond),
			)
		}
		_ = bar.Set64(int64(done))
	}
	pg, err := postgres.Open(ctx, postgres.Options{URL: ef.postgres})
	if err != nil {
		return err
	}
	defer pg.Close()
	var events uint64
	progressEvents := progress
	progress = func(done, total uint64) { events = done; progressEvents(done, total) }
	pos, err := postgres.Rebuild(ctx, es, postgres.RebuildOptions{
		Pool:     pg.Pool(),
		Name:     name,
		Opener:   projections.KeyringOpener(es),
		Progress: progress,
	})
	if bar != nil {
		_ = bar.Finish()
	}
	if err != nil {
		return fmt.Errorf("rebuild %s: %w", name, err)
	}
	el := time.Since(start)
	fmt.Fprintf(stdout, "rebuilt %s: %d events in %s (%.0f events/s), swapped in at position %d\n", name, events, el.Round(time.Millisecond), float64(events)/el.Seconds(), pos)
	return nil
}

// openLogForPostgres is openLogForCommand for a command on the PostgreSQL
// read models: without --postgres it fails with noPostgres (what to do
// instead) and how to name them.
func (ef *engineFlags) openLogForPostgres(ctx context.Context, stderr io.Writer, getenv func(string) string, noPostgres string) (*eventstore.Store, func(), error) {
	if ef.postgres == "" {
		return nil, nil, errors.New(noPostgres + "; give --postgres or DATABASE_URL")
	}
	return ef.openLogForCommand(ctx, stderr, getenv)
}

// openLogForCommand opens the log for an operational command (read-only
// when ef says so), logging warnings to stderr; close releases the data
// dir's lock and the store.
func (ef *engineFlags) openLogForCommand(ctx context.Context, stderr io.Writer, getenv func(string) string) (*eventstore.Store, func(), error) {
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sec, err := ef.keys(getenv, false)
	if err != nil {
		return nil, nil, err
	}
	es, lock, err := ef.openLog(ctx, sec, logger, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("open event store: %w", err)
	}
	return es, func() { es.Close(); lock.Unlock() }, nil
}
