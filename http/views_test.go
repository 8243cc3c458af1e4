package http

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger"
)

// sampleViews are read-model views with every field set (the json:"-"
// ones too, which must stay hidden), and zero ones, for the views' JSON test.
type sampleViews struct {
	person      domain.PersonView
	health      domain.HealthView
	venue       domain.VenueView
	entry       domain.Entry
	visit       domain.Visit
	alert       domain.Alert
	declaration domain.DeclarationView
	audit       domain.AuditEntry
	chain       domain.AuditChainEntry
	trace       ledger.TraceResult
	poison      ledger.PoisonMessage
}

func fullViews() sampleViews {
	id := func(n byte) uuid.UUID { return uuid.UUID{n, n, n, n, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, n} }
	at := func(h int) time.Time { return time.Date(2022, 5, 1, h, 30, 15, 123456789, time.UTC) }
	return sampleViews{
		person: domain.PersonView{ID: id(1), NameMasked: "张*", IDType: "resident_id", IDMasked: "3713**********1234",
			IDHash: "secret-hash", Verification: "approved", GuardianID: id(2), Relation: "child",
			FamilyMembers: []uuid.UUID{id(3), id(4)}, Erased: true, RegisteredAt: at(1), Position: 77},
		health: domain.HealthView{CodeColour: "green", NATResult: "negative", NATAt: at(2), VaccineDoses: 3, RecordedAt: at(3)},
		venue: domain.VenueView{ID: id(5), Name: "兰山超市 \"<&>\"", Type: "supermarket", District: "371302", Address: "1 Lanshan Road",
			Lat: 35.05, Lng: 118.35, Status: "rejected", Reason: "no licence", ManagerID: id(6), Admins: []uuid.UUID{id(7)},
			RequireGreen: true, NATWithinHours: 48, AppliedAt: at(4), ReviewedAt: at(5)},
		entry: domain.Entry{EventID: id(8), PersonID: id(9), NameMasked: "李*", IDMasked: "3713**********0001", At: at(6),
			Direction: "in", Decision: "deny", Method: "staff_scan", Operator: "scanner:1", Reason: "red code", Position: 99},
		visit: domain.Visit{EventID: id(10), VenueID: id(11), VenueName: "兰山超市", VenueType: "supermarket", District: "371302",
			Address: "1 Lanshan Road", At: at(7), Direction: "out", Decision: "pass"},
		alert: domain.Alert{EventID: id(12), District: "371302", VenueID: id(13), PersonID: id(14), PassEventID: id(15),
			CodeColour: "red", Decision: "deny", Reason: "red code", At: at(8)},
		declaration: domain.DeclarationView{ID: id(16), Kind: "arrival", PersonID: id(17), FamilyMemberIDs: []uuid.UUID{id(18)},
			District: "371302", Status: "rejected", Reason: "incomplete", Queued: true, SubmittedAt: at(9), QueuedAt: at(10),
			ReviewedAt: at(11),
			Arrival: &domain.ArrivalDetails{ArrivalDate: "2022-05-02", Origin: "上海", DestinationDistrict: "371302",
				NATResult: "negative", NATAt: at(12)},
			Truck: &domain.TruckDetails{PlateNumber: "鲁Q12345", NATProofAt: at(13), ItineraryOK: true, HealthCodeColour: "green",
				LogisticsPark: "Linyi", ContactName: "王*", ContactPhone: "138****8000"},
			History: []domain.DeclarationStep{{EventID: id(19), Type: "ArrivalDeclared", At: at(14), Actor: "person:1",
				Decision: "reject", Reason: "incomplete", Position: 5}, {}},
			QueuePosition: 42},
		audit: domain.AuditEntry{EventID: id(20), TraceID: id(21), Analyst: "analyst:1", PersonID: id(22), From: at(15), To: at(16),
			Depth: 2, Reason: "cluster 7", Kind: "contacts", Source: "log", AsOf: at(17), MinOverlapMinutes: 15,
			BufferMinutes: 30, Contacts: 4, At: at(18), Position: 123},
		chain: domain.AuditChainEntry{AuditRecorded: domain.AuditRecorded{Seq: 3, PrevHash: "ab", Hash: "cd",
			Kind: "venue_review", Actor: "reviewer:371302:wang", Role: "reviewer", PersonID: id(29), VenueID: id(30),
			DeclarationID: id(31), Outcome: "approve", Reason: "ok", From: at(1), To: at(2), Depth: 1,
			SourceEventID: id(32), SourceType: "VenueReviewed", At: at(3)}, EventID: id(33), Position: 140},
		trace: ledger.TraceResult{TraceID: id(23), EventID: id(24), Position: 130, ReadPosition: 129, AsOf: at(19), From: at(20), To: at(21),
			Depth: 2, MinOverlap: 15 * time.Minute, Buffer: 5 * time.Minute,
			Index:  ledger.TraceIndex{PersonID: id(25), NameMasked: "赵*", Visits: 1, Contacts: 2, SecondContacts: 1},
			Visits: []ledger.TraceVisit{{VenueID: id(26), VenueName: "兰山饭店", VenueType: "restaurant", District: "371302", Start: at(1), End: at(2)}},
			Contacts: []ledger.TraceContact{{Contact: domain.Contact{PersonID: id(27), Depth: 1, ViaPersonID: id(25), VenueID: id(26),
				OverlapStart: at(1), OverlapEnd: at(2), OverlapMinutes: 60}, NameMasked: "钱*", VenueName: "兰山饭店"}}},
		poison: ledger.PoisonMessage{ID: 7, Reaction: "alerts", Reason: "venue unknown", PoisonedAt: at(22), Subject: "s", Sequence: 8,
			Events: []ledger.PoisonEvent{{EventID: id(28), Type: "PassRecorded", Aggregate: "pass.x", Position: 9, OccurredAt: at(23),
				Payload: []byte(`{"a":1}`)}}},
	}
}

var update = flag.Bool("update", false, "rewrite testdata/views.golden from what the views render to")

// TestViewsJSON checks the bytes the API's views render to against
// testdata/views.golden (captured when the domain views still carried the
// JSON tags, so the move to http's render types changed no byte).
func TestViewsJSON(t *testing.T) {
	got := map[string][]byte{}
	add := func(name string, v any) {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		got[name] = b
	}
	for _, c := range []struct {
		name string
		v    sampleViews
	}{{"full", fullViews()}, {"zero", sampleViews{}}} {
		v := c.v
		p := personResponse{personJSON: personOf(v.person), Verified: true, Position: 9}
		if p.FamilyMembers == nil {
			p.FamilyMembers = []uuid.UUID{}
		}
		h := healthOf(v.health)
		p.Health = &h
		add(c.name+"/person", p)
		add(c.name+"/person_nohealth", personResponse{personJSON: personOf(v.person), Position: 9})
		vr := venueResponse{venueJSON: venueOf(v.venue), Code: "code", Position: 9}
		if vr.Admins == nil {
			vr.Admins = []uuid.UUID{}
		}
		add(c.name+"/venue", vr)
		add(c.name+"/venue_public", publicVenueResponse{publicVenueJSON: publicVenueOf(v.venue), Position: 9})
		add(c.name+"/venues", venueListResponse{Venues: mapSlice([]domain.VenueView{v.venue, v.venue}, venueOf), Position: 9})
		add(c.name+"/venues_empty", venueListResponse{Venues: mapSlice([]domain.VenueView{}, venueOf), Position: 9})
		add(c.name+"/entries", entriesResponse{VenueID: v.venue.ID, Entries: []entryJSON{entryOf(v.entry)}, NextCursor: "c", Position: 9})
		add(c.name+"/trace", traceResponse{PersonID: v.person.ID, Source: "log", Passes: mapSlice([]domain.Visit{v.visit}, visitOf), Position: 9})
		add(c.name+"/alerts", alertsResponse{District: "371302", Alerts: mapSlice([]domain.Alert{v.alert}, alertOf), Position: 9})
		add(c.name+"/declaration", declarationResponse{declarationJSON: declarationOf(v.declaration), Position: 9})
		add(c.name+"/declarations", declarationListResponse{Declarations: mapSlice([]domain.DeclarationView{v.declaration}, declarationOf), Position: 9})
		if v.poison.Events == nil {
			v.poison.Events = []ledger.PoisonEvent{}
		}
		add(c.name+"/poison", poisonListResponse{Entries: mapSlice([]ledger.PoisonMessage{v.poison}, poisonMessageOf)})
		add(c.name+"/contact_trace", contactTraceResponseOf(v.trace))
		add(c.name+"/audit_chain", pageJSON[auditChainEntryJSON]{Entries: mapSlice([]domain.AuditChainEntry{v.chain}, auditChainEntryOf), Position: 9})
		add(c.name+"/audit", pageJSON[auditEntryJSON]{Entries: mapSlice([]domain.AuditEntry{v.audit}, auditEntryOf), NextCursor: "c", Position: 9})
	}
	const golden = "testdata/views.golden"
	if *update {
		var b []byte
		for _, k := range slices.Sorted(maps.Keys(got)) {
			b = append(append(append(append(b, k...), ' '), got[k]...), '\n')
		}
		if err := os.WriteFile(golden, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for line := range strings.Lines(string(want)) {
		name, body, _ := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
		g, ok := got[name]
		if !ok {
			t.Errorf("%s: in %s but not rendered", name, golden)
			continue
		}
		seen++
		if string(g) != body {
			t.Errorf("%s:\n got %s\nwant %s", name, g, body)
		}
	}
	if seen != len(got) {
		t.Errorf("rendered %d views, %s holds %d", len(got), golden, seen)
	}
}

// TestTraceAnswerStreamed: the trace answer written contact by contact is
// byte for byte what writeJSON writes for the whole render type, with no
// contacts, one, and many (with the markup and quotes JSON escapes).
func TestTraceAnswerStreamed(t *testing.T) {
	base := fullViews().trace
	many := slices.Clone(base.Contacts)
	for i := range 300 {
		c := base.Contacts[0]
		c.Depth = 1 + i%2
		c.VenueName = fmt.Sprintf("店 \"%d\" <&>", i)
		many = append(many, c)
	}
	for _, tc := range []struct {
		name     string
		contacts []ledger.TraceContact
	}{{"nil", nil}, {"none", []ledger.TraceContact{}}, {"one", base.Contacts}, {"many", many}} {
		t.Run(tc.name, func(t *testing.T) {
			res := base
			res.Contacts = tc.contacts
			want := httptest.NewRecorder()
			if err := writeJSON(want, http.StatusCreated, contactTraceResponseOf(res)); err != nil {
				t.Fatal(err)
			}
			got := httptest.NewRecorder()
			if err := (&Server{}).writeTraceJSON(got, httptest.NewRequest("POST", "/v1/traces", nil), res); err != nil {
				t.Fatal(err)
			}
			if got.Code != want.Code || got.Header().Get("Content-Type") != want.Header().Get("Content-Type") {
				t.Fatalf("status %d %q, want %d %q", got.Code, got.Header().Get("Content-Type"), want.Code, want.Header().Get("Content-Type"))
			}
			if !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) {
				t.Fatalf("streamed answer differs:\n%.300s\nwant\n%.300s", got.Body.Bytes(), want.Body.Bytes())
			}
		})
	}
}
