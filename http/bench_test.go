package http

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger"
	"github.com/checkin-ledger/ledger/token"
)

// The pass route's own cost, against a handler that does nothing with the
// same request (the baseline): run both with
//
//	go test -run X -bench 'Noop|PassLayer' -benchmem ./http/
//
// BenchmarkRecordPass adds the ledger and the durable store behind it.

func passBody(venueID uuid.UUID, code string) string {
	return `{"method":"staff_scan","venue_id":"` + venueID.String() + `","personal_code":"` + code + `","direction":"in"}`
}

// BenchmarkNoopHandler is the baseline: a request through a handler that
// reads the body and answers a fixed JSON object.
func BenchmarkNoopHandler(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var buf [512]byte
		for {
			if _, err := r.Body.Read(buf[:]); err != nil {
				break
			}
		}
		w.Header()["Content-Type"] = jsonContentType
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte(`{"ok":true}` + "\n"))
	})
	body := passBody(uuid.New(), strings.Repeat("x", 200))
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/v1/passes", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer x")
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
}

// BenchmarkPassLayer is what the HTTP layer does for one pass besides the
// ledger: route, authenticate, decode, check the personal code, and encode
// the one screen.
func BenchmarkPassLayer(b *testing.B) {
	// The layer needs no store: a server with a signer only.
	signer, err := token.NewSigner(testKey, nil)
	if err != nil {
		b.Fatal(err)
	}
	e := &testEnv{t: b, srv: New(Options{Signer: signer}), signer: signer}
	venue := uuid.New()
	tok, _ := e.signer.IssueBearer(domain.Actor{Role: domain.RoleScanner, VenueID: venue}, 0)
	code, _ := e.signer.IssuePersonalCode(uuid.New())
	body := passBody(venue, code)
	res := ledger.PassResult{EventID: uuid.New(), Position: 123456, Decision: "pass",
		Screen: domain.Screen{NameMasked: "张*", CodeColour: "green", VenueID: venue, VenueName: "兰山超市",
			At: time.Now(), Direction: "in", Decision: "pass", VaccineDoses: 3}}
	r := e.srv.router
	r.With(e.srv.authenticated).Post("/bench/passes", e.srv.handle(func(w http.ResponseWriter, r *http.Request) error {
		a := actorOf(r)
		req, err := e.srv.readPassRequest(w, r)
		if err != nil {
			return err
		}
		if _, err := e.srv.passCommand(a, &req); err != nil {
			return err
		}
		return writePass(w, res)
	}))
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/bench/passes", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		if rec.Code != http.StatusCreated {
			b.Fatalf("status %d: %s", rec.Code, rec.Body.String())
		}
	}
}

// BenchmarkRecordPass is POST /v1/passes end to end in process: the HTTP
// layer, the ledger's rules, and the durable group-committed append to the
// embedded JetStream, from many concurrent scanners.
func BenchmarkRecordPass(b *testing.B) {
	e := newTestServer(b)
	w := benchWorld(b, e)
	b.SetParallelism(32)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest("POST", "/v1/passes", strings.NewReader(w.body))
			req.Header.Set("Authorization", "Bearer "+w.scanner)
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			e.srv.Handler().ServeHTTP(rec, req)
			if rec.Code != http.StatusCreated {
				b.Errorf("status %d: %s", rec.Code, rec.Body.String())
				return
			}
		}
	})
}

type benchSetup struct {
	scanner string
	body    string
}

func benchWorld(b *testing.B, e *testEnv) benchSetup {
	b.Helper()
	manager := e.register("吴一", 901)
	visitor := e.register("钱三", 902)
	venue := e.approvedVenue(manager, "兰山超市")
	e.waitApplied(visitor.Position)
	// Personal codes last minutes; a long benchmark would outlive one, so
	// use a manual entry, which needs no code.
	body := `{"method":"manual","venue_id":"` + venue.String() + `","id_type":"resident_id","id_number":"` +
		residentID(b, 902) + `","direction":"in"}`
	return benchSetup{scanner: e.bearer(domain.Actor{Role: domain.RoleScanner, VenueID: venue}), body: body}
}
