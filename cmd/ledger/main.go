// Command ledger is the check-in ledger service and its tools.
//
//	ledger serve [--data DIR] [--key-file PATH] [--http ADDR] [--nats-url URL] [--replicas N] [--postgres URL]
//	ledger token issue --role R --subject NAME [--venue V] [--person P] [--district D] [--ttl D] [--data DIR | --key-file PATH]
//	ledger projections status  [--data DIR | --nats-url URL] [--postgres URL]
//	ledger projections rebuild [NAME] [--data DIR | --nats-url URL] [--postgres URL]
//	ledger audit verify [--data DIR | --nats-url URL] [--key-file PATH] | --url URL --token T
//	ledger probe [URL]
//
// cmd is the only place that reads flags and the environment; it builds the
// parts (event store, read models, projector, command side, HTTP server) and
// wires them together.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // --time-zone works in an image without a zoneinfo database
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "ledger:", err)
		}
		os.Exit(1)
	}
}

const usage = `usage: ledger <command> [flags]

commands:
  serve                       run the service (embedded NATS + in-memory read models by default)
  token issue --role R        print a bearer token signed with the data dir's key
  projections status          print each projection's position and lag
  projections rebuild [NAME]  replay the log into fresh read-model tables and swap them in
  audit verify                check the audit chain and its anchor (a stopped store, or --url a running one)
  probe [URL]                 exit 0 when URL (default http://127.0.0.1:8080/readyz) answers 200

Run 'ledger <command> -h' for its flags.
`

// run dispatches a subcommand; main is a thin shell around it so tests can
// call it with their own arguments, output and environment.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		return badUsage(stderr, errors.New("no command"))
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr, getenv)
	case "token":
		if len(args) < 2 || args[1] != "issue" {
			return badUsage(stderr, errors.New("token: want 'token issue'"))
		}
		return tokenIssue(args[2:], stdout, stderr, getenv)
	case "projections":
		if len(args) < 2 {
			return badUsage(stderr, errors.New("projections: want 'status' or 'rebuild'"))
		}
		switch args[1] {
		case "status":
			return projectionsStatus(ctx, args[2:], stdout, stderr, getenv)
		case "rebuild":
			return projectionsRebuild(ctx, args[2:], stdout, stderr, getenv)
		}
		return fmt.Errorf("projections: unknown subcommand %q", args[1])
	case "audit":
		if len(args) < 2 || args[1] != "verify" {
			return badUsage(stderr, errors.New("audit: want 'audit verify'"))
		}
		return auditVerify(ctx, args[2:], stdout, stderr, getenv)
	case "probe":
		return probe(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return badUsage(stderr, fmt.Errorf("unknown command %q", args[0]))
}

// badUsage prints the usage to stderr and returns err, what was wrong with
// the command line.
func badUsage(stderr io.Writer, err error) error {
	fmt.Fprint(stderr, usage)
	return err
}
