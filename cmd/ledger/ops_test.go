package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An operational command pointed at the data dir of a running embedded
// serve must refuse before it opens a second JetStream on the same files.
func TestProjectionsCommandsRefuseALiveDataDir(t *testing.T) {
	dir := t.TempDir()
	startService(t, dir, nil)
	before, err := os.ReadDir(filepath.Join(dir, "jetstream"))
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"projections", "status", "--data", dir, "--postgres", "postgres://127.0.0.1:1/none"},
		{"projections", "rebuild", "--data", dir, "--postgres", "postgres://127.0.0.1:1/none"},
		{"projections", "rebuild", "read_models", "--data", dir, "--postgres", "postgres://127.0.0.1:1/none"},
	} {
		t.Run(strings.Join(args[:2], " "), func(t *testing.T) {
			err := run(context.Background(), args, io.Discard, io.Discard, func(string) string { return "" })
			if !errors.Is(err, errDataInUse) {
				t.Fatalf("run %q = %v, want errDataInUse", args, err)
			}
			if !strings.Contains(err.Error(), "ledger serve") || !strings.Contains(err.Error(), "--nats-url") {
				t.Errorf("message %q does not say what holds the dir and what to do", err)
			}
		})
	}
	after, err := os.ReadDir(filepath.Join(dir, "jetstream"))
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Errorf("jetstream dir changed under the live server: %d entries, then %d", len(before), len(after))
	}
}

// A second serve on the same data dir refuses too, and the lock is free
// again once the first one stopped.
func TestDataLockIsReleasedOnClose(t *testing.T) {
	dir := t.TempDir()
	s := startService(t, dir, nil)
	if _, err := lockData(dir); !errors.Is(err, errDataInUse) {
		t.Fatalf("lockData on a served dir = %v, want errDataInUse", err)
	}
	s.stop(t)
	l, err := lockData(dir)
	if err != nil {
		t.Fatalf("lockData after stop: %v", err)
	}
	l.Unlock()
}

func TestRebuildRefusesUnknownNames(t *testing.T) {
	dir := t.TempDir()
	err := run(context.Background(), []string{"projections", "rebuild", "read_modles", "--data", dir, "--postgres", "postgres://127.0.0.1:1/none"},
		io.Discard, io.Discard, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), `unknown projection "read_modles"`) {
		t.Fatalf("rebuild of an unknown name = %v", err)
	}
	if _, serr := os.Stat(filepath.Join(dir, "jetstream")); serr == nil {
		t.Error("an unknown name opened the event store")
	}
}

func TestNameAndFlagsInAnyOrder(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		wantName string
		wantData string
		wantErr  bool
	}{
		{name: "flags only", args: []string{"--data", "/a"}, wantData: "/a"},
		{name: "name first", args: []string{"read_models", "--data", "/b"}, wantName: "read_models", wantData: "/b"},
		{name: "name last", args: []string{"--data", "/c", "read_models"}, wantName: "read_models", wantData: "/c"},
		{name: "both sides", args: []string{"--data", "/d", "read_models", "--postgres", "x"}, wantName: "read_models", wantData: "/d"},
		{name: "two names", args: []string{"a", "b"}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("rebuild", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			var ef engineFlags
			ef.register(fs, func(string) string { return "" })
			name, err := parseNameAndFlags(fs, tc.args)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if name != tc.wantName || ef.data != tc.wantData {
				t.Errorf("name %q data %q, want %q %q", name, ef.data, tc.wantName, tc.wantData)
			}
		})
	}
}
