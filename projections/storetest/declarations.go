package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/google/uuid"
)

// testDeclarations checks the declarations read model: a declaration with
// its full history, and the review queue that lists only the declarations
// that joined it, in the order they joined, filtered by district, status
// and kind. A redelivered event changes nothing.
func testDeclarations(t *testing.T, f *feeder) {
	mother, _, motherReg := f.person("孙母", "110101199003071234")
	kid := uuid.New()
	driver, _, driverReg := f.person("钱司机", "110101198803075678")
	erased, _, erasedReg := f.person("吴司机", "110101198703079876")
	f.apply(motherReg, driverReg, erasedReg)

	arrivalID, truckID, unqueuedID, erasedID := uuid.New(), uuid.New(), uuid.New(), uuid.New()
	natAt := Base.Add(-10 * time.Hour).UTC()
	proofAt := Base.Add(-2 * time.Hour).UTC()
	truck := func(id, person uuid.UUID, contact, phone string) *domain.TruckPassDeclared {
		return &domain.TruckPassDeclared{DeclarationID: id, PersonID: person, PlateNumber: f.keys.Seal(person, "鲁Q1234挂"),
			NATProofAt: proofAt, ItineraryOK: true, HealthCodeColour: "green", LogisticsPark: "临沂商城国际物流园",
			District: "371311", ContactName: f.keys.Seal(person, contact), ContactPhone: f.keys.Seal(person, phone)}
	}
	declared := []domain.Envelope{
		f.env(domain.DeclarationAggregate(arrivalID), &domain.ArrivalDeclared{DeclarationID: arrivalID, PersonID: mother,
			FamilyMemberIDs: []uuid.UUID{kid}, ArrivalDate: "2022-03-02", Origin: f.keys.Seal(mother, "上海市浦东新区"),
			DestinationDistrict: "371302", NATResult: "negative", NATAt: natAt}, Base),
		f.env(domain.DeclarationAggregate(truckID), truck(truckID, driver, "赵调度", "13900001111"), Base.Add(time.Minute)),
		f.env(domain.DeclarationAggregate(unqueuedID), &domain.ArrivalDeclared{DeclarationID: unqueuedID, PersonID: mother,
			// As a v1 event held it (upcast): the origin in clear.
			ArrivalDate: "2022-03-03", ClearOrigin: "济南市", DestinationDistrict: "371302", NATResult: "none"}, Base.Add(2*time.Minute)),
	}
	declared = append(declared, f.env(domain.DeclarationAggregate(erasedID), truck(erasedID, erased, "郑调度", "13700002222"), Base.Add(3*time.Minute)))
	if err := f.keys.Destroy(ctx, erased); err != nil {
		t.Fatal(err)
	}
	f.apply(declared...)
	// The truck pass joins its queue before the arrival does.
	later := []domain.Envelope{
		f.env(domain.DeclarationAggregate(truckID), &domain.DeclarationQueued{DeclarationID: truckID, Kind: "truck", District: "371311"}, Base.Add(4*time.Minute)),
		f.env(domain.DeclarationAggregate(arrivalID), &domain.DeclarationQueued{DeclarationID: arrivalID, Kind: "arrival", District: "371302"}, Base.Add(5*time.Minute)),
		f.env(domain.DeclarationAggregate(arrivalID), &domain.DeclarationReviewed{DeclarationID: arrivalID, Decision: "approve"}, Base.Add(6*time.Minute)),
		f.env(domain.DeclarationAggregate(erasedID), &domain.DeclarationQueued{DeclarationID: erasedID, Kind: "truck", District: "371311"}, Base.Add(7*time.Minute)),
	}
	f.apply(later...)
	// The same events appended again (a retry after the duplicate window):
	// new positions, same ids.
	again := slices.Clone(later[:3])
	f.apply(again...)

	a := Must(f.s.Declaration(ctx, arrivalID))(t)
	wantSteps := []string{domain.TypeArrivalDeclared, domain.TypeDeclarationQueued, domain.TypeDeclarationReviewed}
	if a.ID != arrivalID || a.Kind != "arrival" || a.PersonID != mother || !slices.Equal(a.FamilyMemberIDs, []uuid.UUID{kid}) ||
		a.District != "371302" || a.Status != "approved" || !a.Queued || a.Truck != nil || a.Arrival == nil ||
		!a.SubmittedAt.Equal(Base) || !a.QueuedAt.Equal(Base.Add(5*time.Minute)) || !a.ReviewedAt.Equal(Base.Add(6*time.Minute)) {
		t.Fatalf("arrival declaration: %+v", a)
	}
	if d := *a.Arrival; d.ArrivalDate != "2022-03-02" || d.Origin != "上海市浦东新区" || d.DestinationDistrict != "371302" ||
		d.NATResult != "negative" || !d.NATAt.Equal(natAt) {
		t.Fatalf("arrival details: %+v", d)
	}
	if got := stepTypes(a.History); !slices.Equal(got, wantSteps) {
		t.Fatalf("history %v, want %v", got, wantSteps)
	}
	if r := a.History[2]; r.Decision != "approve" || r.EventID != later[2].ID || r.Position != later[2].Position ||
		r.Actor != "test" || !r.At.Equal(Base.Add(6*time.Minute)) {
		t.Fatalf("review step: %+v", r)
	}

	tr := Must(f.s.Declaration(ctx, truckID))(t)
	if tr.Kind != "truck" || tr.Status != "pending" || tr.PersonID != driver || tr.District != "371311" || tr.Truck == nil ||
		len(tr.FamilyMemberIDs) != 0 || tr.FamilyMemberIDs == nil || len(tr.History) != 2 {
		t.Fatalf("truck pass: %+v", tr)
	}
	if d := *tr.Truck; d.PlateNumber != "鲁Q1234挂" || !d.NATProofAt.Equal(proofAt) || !d.ItineraryOK || d.HealthCodeColour != "green" ||
		d.LogisticsPark != "临沂商城国际物流园" || d.ContactName != "赵*" || d.ContactPhone != "139****1111" {
		t.Fatalf("truck details (contact masked): %+v", d)
	}
	if e := Must(f.s.Declaration(ctx, erasedID))(t); e.Truck == nil || e.Truck.ContactName != "" || e.Truck.ContactPhone != "***" || e.Truck.PlateNumber != "" {
		t.Fatalf("truck pass of an erased driver: %+v", e.Truck)
	}
	if u := Must(f.s.Declaration(ctx, unqueuedID))(t); u.Queued || u.Status != "pending" || len(u.History) != 1 || u.Arrival.Origin != "济南市" {
		t.Fatalf("declaration not yet queued: %+v", u)
	}
	if _, err := f.s.Declaration(ctx, uuid.New()); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("unknown declaration: err %v, want ErrNotFound", err)
	}

	tests := []struct {
		name string
		f    domain.DeclarationFilter
		want []uuid.UUID
	}{
		{"whole queue in joining order", domain.DeclarationFilter{}, []uuid.UUID{truckID, arrivalID, erasedID}},
		{"district", domain.DeclarationFilter{District: "371302"}, []uuid.UUID{arrivalID}},
		{"pending", domain.DeclarationFilter{Status: "pending"}, []uuid.UUID{truckID, erasedID}},
		{"kind", domain.DeclarationFilter{Kind: "arrival"}, []uuid.UUID{arrivalID}},
		{"district and status", domain.DeclarationFilter{District: "371302", Status: "pending"}, []uuid.UUID{}},
		{"limit", domain.DeclarationFilter{Limit: 1}, []uuid.UUID{truckID}},
		{"quiet district", domain.DeclarationFilter{District: "371399"}, []uuid.UUID{}},
	}
	for _, tt := range tests {
		got := Must(f.s.Declarations(ctx, tt.f))(t)
		ids := ids(got, func(v domain.DeclarationView) uuid.UUID { return v.ID })
		if !slices.Equal(ids, tt.want) {
			t.Fatalf("%s: %v, want %v", tt.name, ids, tt.want)
		}
		for _, v := range got {
			if len(v.History) == 0 || v.History[0].Type == "" {
				t.Fatalf("%s: listed declaration without its history: %+v", tt.name, v)
			}
		}
	}
}

func stepTypes(steps []domain.DeclarationStep) []string {
	out := make([]string, 0, len(steps))
	for _, s := range steps {
		out = append(out, s.Type)
	}
	return out
}
