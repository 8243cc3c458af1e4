package domain

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"golang.org/x/text/unicode/norm"
)

// The audit trail: one hash chain of AuditRecorded events on one versioned
// aggregate (AuditChainAggregate). Each entry says who (the token's subject
// and role), what (kind and the ids it is about: never a name or an ID
// number), when and why, and carries its place in the chain: its sequence
// number, the hash of the entry before it and its own hash, SHA-256 over
// the canonical encoding of every other field (AuditRecorded.ChainHash).
//
// Entries are derived from the log: each audited event (auditedEvents) gets
// exactly one entry, whose event id is derived from the source event's id
// (AuditEventID). The command side appends them at the chain's head version,
// so concurrent writers conflict and one of them decides again on the new
// head: the chain stays linear across replicas.

// TypeAuditRecorded is the audit chain's event type.
const TypeAuditRecorded = "AuditRecorded"

// KindAuditChain is the audit chain's aggregate kind: one message per
// entry, appended at the expected version (not packed, unlike KindAudit's
// TraceRequested looks).
const KindAuditChain = "auditchain"

// AuditChainAggregate names the one audit chain.
const AuditChainAggregate = KindAuditChain + ".main"

// AuditGenesis is the prev_hash of the chain's first entry.
var AuditGenesis = strings.Repeat("0", 64)

// Audit entry kinds (AuditRecorded.Kind).
const (
	AuditContacts          = LookContacts // a contact trace (POST /v1/traces)
	AuditHistory           = LookHistory  // a read of a person's passes
	AuditVenueReview       = "venue_review"
	AuditDeclarationReview = "declaration_review"
	AuditSubAdminAdded     = "sub_admin_added"
	AuditSubAdminRemoved   = "sub_admin_removed"
	AuditPersonVerified    = "person_verified"
	AuditPersonReleased    = "person_released"
	// AuditPersonErased is the kind of an erasure's entry: see the hook in
	// auditedEvents.
	AuditPersonErased = "person_erased"
)

// AuditRecorded: an audited action (a look at a person's movements, an
// administrative decision) took its place in the audit chain.
type AuditRecorded struct {
	// Seq is the entry's place in the chain: 1, 2, 3, … with no gap.
	Seq uint64 `json:"seq"`
	// PrevHash is the previous entry's Hash (AuditGenesis for Seq 1).
	PrevHash string `json:"prev_hash"`
	// Hash is ChainHash(): hex SHA-256 of every other field.
	Hash string `json:"hash"`

	// Kind says what was done (Audit…).
	Kind string `json:"kind"`
	// Actor is who did it: their token's subject ("analyst:li", "reviewer:371302:wang", "person:<id>").
	Actor string `json:"actor"`
	// Role is the actor's role (the subject's first part).
	Role string `json:"role"`
	// The ids the action was about; zero when not.
	PersonID      uuid.UUID `json:"person_id,omitzero"`
	VenueID       uuid.UUID `json:"venue_id,omitzero"`
	DeclarationID uuid.UUID `json:"declaration_id,omitzero"`
	// Outcome is a decision's result ("approve", "reject", "face/approved").
	Outcome string `json:"outcome,omitempty"`
	// Reason is why, as the actor gave it.
	Reason string `json:"reason,omitempty"`
	// From, To and Depth are a look's window and a trace's depth.
	From  time.Time `json:"from,omitzero"`
	To    time.Time `json:"to,omitzero"`
	Depth int       `json:"depth,omitempty"`
	// SourceEventID and SourceType name the audited event in the log.
	SourceEventID uuid.UUID `json:"source_event_id"`
	SourceType    string    `json:"source_type"`
	// At is when the action was recorded (the source event's server time).
	At time.Time `json:"at"`
}

func (AuditRecorded) EventType() string  { return TypeAuditRecorded }
func (AuditRecorded) SchemaVersion() int { return 1 }

// auditedEvents maps each audited event type to the entry it makes (when
// and the source are filled in by AuditEntryOf, and who unless the event
// names them): the one list of what the audit trail holds. Adding a kind is
// one line here.
var auditedEvents = map[string]func(Event) AuditRecorded{
	TypeTraceRequested: auditOf(func(t *TraceRequested) AuditRecorded {
		kind := AuditContacts
		if t.Kind == LookHistory {
			kind = AuditHistory
		}
		return AuditRecorded{Kind: kind, PersonID: t.PersonID, Reason: t.Reason, From: t.From, To: t.To, Depth: t.Depth}
	}),
	TypeVenueReviewed: auditOf(func(v *VenueReviewed) AuditRecorded {
		return AuditRecorded{Kind: AuditVenueReview, VenueID: v.VenueID, Outcome: v.Decision, Reason: v.Reason}
	}),
	TypeDeclarationReviewed: auditOf(func(d *DeclarationReviewed) AuditRecorded {
		return AuditRecorded{Kind: AuditDeclarationReview, DeclarationID: d.DeclarationID, Outcome: d.Decision, Reason: d.Reason}
	}),
	TypeSubAdminAdded: auditOf(func(s *SubAdminAdded) AuditRecorded {
		return AuditRecorded{Kind: AuditSubAdminAdded, VenueID: s.VenueID, PersonID: s.PersonID}
	}),
	TypeSubAdminRemoved: auditOf(func(s *SubAdminRemoved) AuditRecorded {
		return AuditRecorded{Kind: AuditSubAdminRemoved, VenueID: s.VenueID, PersonID: s.PersonID}
	}),
	TypePersonVerified: auditOf(func(p *PersonVerified) AuditRecorded {
		return AuditRecorded{Kind: AuditPersonVerified, PersonID: p.PersonID, Outcome: p.Method + "/" + p.Result}
	}),
	TypePersonReleased: auditOf(func(p *PersonReleased) AuditRecorded {
		return AuditRecorded{Kind: AuditPersonReleased, PersonID: p.PersonID, Reason: p.Reason}
	}),
	TypePersonErased: auditOf(func(p *PersonErased) AuditRecorded {
		// Who erased is the admin (By), also for a family member's erasure
		// the reactions append for their guardian's, which names the guardian.
		e := AuditRecorded{Kind: AuditPersonErased, Actor: p.By, PersonID: p.PersonID, Reason: p.Reason}
		if p.Guardian != uuid.Nil {
			e.Outcome = "with guardian " + p.Guardian.String()
		}
		return e
	}),
}

// auditOf adapts an entry builder of one event type to auditedEvents.
func auditOf[P Event](f func(P) AuditRecorded) func(Event) AuditRecorded {
	return func(ev Event) AuditRecorded { return f(ev.(P)) }
}

// maxReasonDigits is the longest run of digits a reason may hold: an ID
// number has 15 or 18 characters and a mobile number 11.
const maxReasonDigits = 10

// ValidateAuditedReason checks the reason of an audited action (a trace, a
// look, a review, a release): valid text of at most MaxReasonLength runes,
// required when required is set, and no ID or phone number, which the
// audit trail would keep for good (reasonNumbers): no run of more than
// maxReasonDigits digits typed whole or spaced, and, written with dashes,
// dots or parentheses ("138-0013-8000", "(0539) 812.3456"), nothing shaped
// like a mobile, landline or ID number (a case reference such as
// "case-2022-0512-00123" is kept).
func ValidateAuditedReason(reason string, required bool) (string, error) {
	reason, err := Text("reason", reason, MaxReasonLength, required)
	if err != nil {
		return "", err
	}
	for _, n := range reasonNumbers(reason) {
		if len(n.digits) > maxReasonDigits && (!n.punctuated || personalNumber(n)) {
			return "", Invalid("reason", "holds a run of %d or more digits: a reason stays in the audit trail for good and may not hold an ID or phone number (refer to a person by their id)", maxReasonDigits+1)
		}
	}
	return reason, nil
}

// reasonNumber is a run of digits in a reason, its separators taken out.
type reasonNumber struct {
	digits string // ASCII, full-width digits folded
	// punctuated: a separator other than a space stood in the run.
	punctuated bool
	// checkX: the run is followed by X, an ID number's check character.
	checkX bool
}

// reasonNumbers returns the runs of digits in s, a run going on through
// anything but letters between two of its digits (numberSeparator: spaces,
// dashes, punctuation, symbols, marks). s is folded first (NFKC: full-width,
// circled, superscript and mathematical digits become ASCII ones, odd
// spaces plain ones); a digit of another script (Arabic-Indic, Devanagari,
// …) counts as its value.
func reasonNumbers(s string) []reasonNumber {
	var out []reasonNumber
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			s = norm.NFKC.String(s)
			break
		}
	}
	rs := []rune(s)
	for i := 0; i < len(rs); {
		if digitOf(rs[i]) < 0 {
			i++
			continue
		}
		var n reasonNumber
		var b strings.Builder
		for i < len(rs) {
			if d := digitOf(rs[i]); d >= 0 {
				b.WriteByte(byte('0' + d))
				i++
				continue
			}
			j := i
			punctuated := false
			for j < len(rs) && numberSeparator(rs[j]) {
				punctuated = punctuated || !unicode.IsSpace(rs[j])
				j++
			}
			if j == i || j == len(rs) || digitOf(rs[j]) < 0 {
				break
			}
			n.punctuated, i = n.punctuated || punctuated, j
		}
		n.digits = b.String()
		n.checkX = i < len(rs) && (rs[i] == 'X' || rs[i] == 'x')
		out = append(out, n)
	}
	return out
}

// digitOf returns the value of a decimal digit of any script, -1 for
// anything else. Unicode's decimal digits come in runs of ten from zero.
func digitOf(r rune) int {
	switch {
	case r >= '0' && r <= '9':
		return int(r - '0')
	case r < utf8.RuneSelf:
		return -1
	case !unicode.IsDigit(r):
		// Chinese numerals are letters to Unicode, but a phone number
		// written 一三八〇〇一三八〇〇〇 is a phone number.
		if d, ok := chineseDigits[r]; ok {
			return d
		}
		return -1
	}
	zero := r
	for unicode.IsDigit(zero - 1) {
		zero--
	}
	return int(r-zero) % 10
}

// chineseDigits are the numerals a Chinese (or Japanese) writer may spell
// a number with, 0-9, and their values: the common ones, with the circles
// typed for zero (〇, ○, ◯); the financial ones, simplified, traditional and
// Japanese; the Suzhou numerals; and the digits said aloud on a phone or a
// radio (幺/么 one, 两/兩 two, 洞 zero, 拐 seven, 勾 nine).
var chineseDigits = func() map[rune]int {
	m := map[rune]int{'○': 0, '◯': 0, '洞': 0, '幺': 1, '么': 1, '壱': 1, '两': 2, '兩': 2, '弐': 2, '叄': 3, '参': 3, '拐': 7, '勾': 9}
	for _, set := range []string{"〇一二三四五六七八九", "零壹贰叁肆伍陆柒捌玖", "零壹貳參肆伍陸柒捌玖"} {
		for d, r := range []rune(set) {
			m[r] = d
		}
	}
	for d, r := range []rune("〡〢〣〤〥〦〧〨〩") { // Suzhou, from one
		m[r] = d + 1
	}
	return m
}()

// numberSeparator reports whether r may stand between the digits of a
// written phone or ID number (after NFKC): anything but a digit or a letter. A list
// of separators would always miss one (the ideographic comma and full
// stop, plus signs, arrows, keycap marks were let through by the list this
// replaced), and a number split by words is not a number one writes down.
// Modifier letters (the prolonged sound mark ー, ʰ) are no words and count
// as separators too.
func numberSeparator(r rune) bool {
	return digitOf(r) < 0 && (!unicode.IsLetter(r) || unicode.Is(unicode.Lm, r))
}

// personalNumber reports whether a punctuated run of digits is shaped like
// a phone or ID number: a mobile number (1, 3 to 9, nine more digits)
// anywhere in it (after a country code too), a landline with its area code
// or an international prefix (it starts with 0), or an ID number's length
// (15, 18, or 17 and the check character X).
func personalNumber(n reasonNumber) bool {
	d := n.digits
	if d[0] == '0' || len(d) == 15 || len(d) == 18 || (len(d) == 17 && n.checkX) {
		return true
	}
	for i := 0; i+11 <= len(d); i++ {
		if d[i] == '1' && d[i+1] >= '3' {
			return true
		}
	}
	return false
}

// AuditKinds lists the entry kinds, for validating a filter.
var AuditKinds = []string{AuditContacts, AuditHistory, AuditVenueReview, AuditDeclarationReview,
	AuditSubAdminAdded, AuditSubAdminRemoved, AuditPersonVerified, AuditPersonReleased, AuditPersonErased}

// IsAudited reports whether events of type typ get an audit entry.
func IsAudited(typ string) bool {
	_, ok := auditedEvents[typ]
	return ok
}

// AuditedTypes lists the audited event types.
func AuditedTypes() []string {
	out := make([]string, 0, len(auditedEvents))
	for t := range auditedEvents {
		out = append(out, t)
	}
	return out
}

// AuditEntryOf returns the audit entry an event makes, without its chain
// fields; ok is false for an event that is not audited.
func AuditEntryOf(e Envelope) (entry AuditRecorded, ok bool, err error) {
	build, ok := auditedEvents[e.Type]
	if !ok {
		return AuditRecorded{}, false, nil
	}
	ev, err := Decode(e)
	if err != nil {
		return AuditRecorded{}, true, err
	}
	entry = build(ev)
	if entry.Actor == "" { // the event's own actor, unless it names who acted
		entry.Actor = e.Actor
	}
	entry.Role = RoleOfSubject(entry.Actor)
	entry.SourceEventID = e.ID
	entry.SourceType = e.Type
	// The entry's times are the read models' (a listing from PostgreSQL
	// gives back what was hashed).
	entry.At = Micros(e.RecordedAt)
	if e.RecordedAt.IsZero() {
		entry.At = Micros(e.OccurredAt)
	}
	entry.From, entry.To = Micros(entry.From), Micros(entry.To)
	return entry, true, nil
}

// RoleOfSubject returns the role part of a token's subject ("reviewer" of
// "reviewer:371302:wang").
func RoleOfSubject(subject string) string {
	role, _, _ := strings.Cut(subject, ":")
	return role
}

// auditNamespace is the UUIDv5 namespace of AuditRecorded event ids.
var auditNamespace = uuid.MustParse("5f0c9a3e-2d71-4b8e-9c64-a1e7d3b0f285")

// AuditEventID is the id of the AuditRecorded event of the audited event
// sourceEventID: a redelivered source is the same entry.
func AuditEventID(sourceEventID uuid.UUID) uuid.UUID {
	return uuid.NewSHA1(auditNamespace, sourceEventID[:])
}

// ChainHash returns the entry's hash: hex SHA-256 over its canonical
// encoding, a header line and then every field but Hash, in a fixed order,
// each as "name=<byte length>:<value>\n" (numbers in decimal, times in
// RFC 3339 with nanoseconds in UTC, ids as lower-case UUIDs, zero values
// empty). The length prefix makes the encoding unambiguous whatever a
// reason holds.
func (a AuditRecorded) ChainHash() string {
	b := make([]byte, 0, 512)
	b = append(b, "checkin-ledger audit entry v1\n"...)
	field := func(name, v string) {
		b = append(b, name...)
		b = append(b, '=')
		b = strconv.AppendInt(b, int64(len(v)), 10)
		b = append(b, ':')
		b = append(b, v...)
		b = append(b, '\n')
	}
	id := func(u uuid.UUID) string {
		if u == uuid.Nil {
			return ""
		}
		return u.String()
	}
	at := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	field("seq", strconv.FormatUint(a.Seq, 10))
	field("prev_hash", a.PrevHash)
	field("kind", a.Kind)
	field("actor", a.Actor)
	field("role", a.Role)
	field("person_id", id(a.PersonID))
	field("venue_id", id(a.VenueID))
	field("declaration_id", id(a.DeclarationID))
	field("outcome", a.Outcome)
	field("reason", a.Reason)
	field("from", at(a.From))
	field("to", at(a.To))
	field("depth", strconv.Itoa(a.Depth))
	field("source_event_id", id(a.SourceEventID))
	field("source_type", a.SourceType)
	field("at", at(a.At))
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// AuditChain is the audit chain's state for appending: its head. It depends
// on the last entry only, so the command side replays just the chain's last
// event (a whole replay gives the same state; verifying is
// AuditVerifier's job, not apply's: a tampered chain still takes new
// entries, linked to what is stored, and verify reports the break).
type AuditChain struct {
	seq        uint64
	hash       string
	lastSource uuid.UUID
}

// Seq is the head's sequence number (0: an empty chain).
func (c AuditChain) Seq() uint64 { return c.seq }

// Hash is the head's hash (AuditGenesis for an empty chain).
func (c AuditChain) Hash() string {
	if c.seq == 0 {
		return AuditGenesis
	}
	return c.hash
}

// ReplayAuditChain rebuilds the chain's head from its events in log order:
// all of them or only the last.
func ReplayAuditChain(events []Envelope) (AuditChain, error) {
	return replay(events, applyAuditChain)
}

func applyAuditChain(c *AuditChain, e Envelope, ev Event) error {
	a, ok := ev.(*AuditRecorded)
	if !ok {
		return notPartOf(e, "the audit chain")
	}
	c.seq, c.hash, c.lastSource = a.Seq, a.Hash, a.SourceEventID
	return nil
}

// DecideAuditEntry places entry (as AuditEntryOf made it) at the head of
// chain c: the next sequence number, linked to the head's hash, hashed. An
// entry whose source is the head's already (a retry) decides nothing.
func DecideAuditEntry(c AuditChain, entry AuditRecorded) ([]Event, error) {
	if entry.SourceEventID == uuid.Nil || entry.Kind == "" {
		return nil, Invalid("audit entry", "needs a kind and a source event")
	}
	if c.seq > 0 && c.lastSource == entry.SourceEventID {
		return nil, nil
	}
	entry.Seq = c.seq + 1
	entry.PrevHash = c.Hash()
	entry.Hash = entry.ChainHash()
	return []Event{&entry}, nil
}

// AuditHead names one entry of the chain: the anchored head, or the chain's
// last entry.
type AuditHead struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

// AnchorState says what the anchor's place holds.
type AnchorState string

// Anchor states.
const (
	// AnchorNone: nothing was ever written there (a new chain, or a crash
	// before the chain's first anchor).
	AnchorNone AnchorState = "none"
	// AnchorStored: an anchor that opens with the master key.
	AnchorStored AnchorState = "stored"
	// AnchorDeleted: the anchor was deleted (its tombstone is there); the
	// ledger never deletes it.
	AnchorDeleted AnchorState = "deleted"
	// AnchorAltered: a value that does not open with the master key.
	AnchorAltered AnchorState = "altered"
)

// AuditBreak is the first broken link of a chain: the entry (by the
// sequence number it should have had, and its position in the log when it
// is there) and what is wrong.
type AuditBreak struct {
	Seq      uint64
	Position uint64
	Problem  string
}

// String says which entry and what is wrong.
func (b AuditBreak) String() string {
	if b.Position != 0 {
		return fmt.Sprintf("seq %d (log position %d): %s", b.Seq, b.Position, b.Problem)
	}
	return fmt.Sprintf("seq %d: %s", b.Seq, b.Problem)
}

// AuditReport is what verifying the chain found.
type AuditReport struct {
	// Entries is how many entries the chain holds (up to the first break).
	Entries uint64
	// Head is the chain's last entry (zero for an empty chain).
	Head AuditHead
	// Anchor is the anchored head when AnchorState is AnchorStored.
	Anchor      AuditHead
	AnchorState AnchorState
	// Broken is the first broken link; nil when the chain holds.
	Broken *AuditBreak
	// AnchorLag is how many entries follow the anchored head (all of them
	// with AnchorNone): written but not anchored yet (in flight, or a crash
	// between an append and its anchor's update; the next append moves the
	// anchor). They are linked like the others, but a removal of them would
	// not be noticed.
	AnchorLag uint64
}

// OK reports whether the chain and its anchor hold.
func (r AuditReport) OK() bool { return r.Broken == nil }

// AuditVerifier checks the chain entry by entry, in log order, against the
// anchored head: Add each of the chain's events, then Report.
type AuditVerifier struct {
	anchor     AuditHead
	state      AnchorState
	anchored   bool
	anchorSeen bool
	head       AuditHead
	entries    uint64
	broken     *AuditBreak
}

// NewAuditVerifier starts a verification against the anchor: its state and,
// when stored, the head it names.
func NewAuditVerifier(anchor AuditHead, state AnchorState) *AuditVerifier {
	if state == "" {
		state = AnchorNone
	}
	return &AuditVerifier{anchor: anchor, state: state, anchored: state == AnchorStored}
}

// Add checks the chain's next event; after the first break it checks
// nothing more.
func (v *AuditVerifier) Add(e Envelope) {
	if v.broken != nil {
		return
	}
	want := v.head.Seq + 1
	fail := func(seq uint64, format string, args ...any) {
		v.broken = &AuditBreak{Seq: seq, Position: e.Position, Problem: fmt.Sprintf(format, args...)}
	}
	if e.Type != TypeAuditRecorded {
		fail(want, "an event of type %s (id %s) where entry %d should be", e.Type, e.ID, want)
		return
	}
	ev, err := Decode(e)
	if err != nil {
		fail(want, "the entry does not decode: %v", err)
		return
	}
	a := ev.(*AuditRecorded)
	switch {
	case a.Seq > want:
		fail(want, "missing: the next entry in the log is seq %d (entries removed, or moved out of order)", a.Seq)
		return
	case a.Seq < want:
		fail(want, "out of order: seq %d comes after seq %d (an entry repeated or moved)", a.Seq, v.head.Seq)
		return
	case e.ID != AuditEventID(a.SourceEventID):
		fail(want, "the event id %s is not the one its source %s gives (the entry was replaced)", e.ID, a.SourceEventID)
		return
	case a.Hash != a.ChainHash():
		fail(want, "the content does not match its hash (the entry was changed)")
		return
	case a.PrevHash != v.prevHash():
		fail(want, "prev_hash %s is not the hash of seq %d (%s): seq %d was changed or replaced", short(a.PrevHash), v.head.Seq, short(v.prevHash()), v.head.Seq)
		return
	}
	v.head = AuditHead{Seq: a.Seq, Hash: a.Hash}
	v.entries++
	if v.anchored && a.Seq == v.anchor.Seq {
		v.anchorSeen = true
		if a.Hash != v.anchor.Hash {
			fail(a.Seq, "the anchor names hash %s for seq %d, the chain holds %s (the chain was rewritten from here or before)", short(v.anchor.Hash), a.Seq, short(a.Hash))
		}
	}
}

func (v *AuditVerifier) prevHash() string {
	if v.head.Seq == 0 {
		return AuditGenesis
	}
	return v.head.Hash
}

// EntriesBroken returns the first broken link among the entries added so
// far, leaving the anchor out of it; nil when they hold.
func (v *AuditVerifier) EntriesBroken() *AuditBreak { return v.broken }

// Head returns the last entry added that held.
func (v *AuditVerifier) Head() AuditHead { return v.head }

// Report returns what the verification found, once every event was added.
func (v *AuditVerifier) Report() AuditReport {
	r := AuditReport{Entries: v.entries, Head: v.head, Anchor: v.anchor, AnchorState: v.state, Broken: v.broken}
	if !v.anchored {
		r.Anchor = AuditHead{}
	}
	if r.Broken != nil {
		return r
	}
	switch {
	case v.state == AnchorDeleted:
		r.Broken = &AuditBreak{Seq: v.head.Seq + 1, Problem: fmt.Sprintf("the anchor was deleted (the chain holds %d entries; the ledger never deletes it: the tail may have been truncated with it)", v.head.Seq)}
	case v.state == AnchorAltered:
		r.Broken = &AuditBreak{Seq: v.head.Seq + 1, Problem: "the anchor does not open with the master key (written without it, or altered)"}
	case !v.anchored:
		r.AnchorLag = v.head.Seq // never anchored: a new chain, or a crash before its first anchor
	case v.anchored && v.anchor.Seq > v.head.Seq:
		r.Broken = &AuditBreak{Seq: v.head.Seq + 1, Problem: fmt.Sprintf("missing: the chain ends at seq %d, the anchor names seq %d (the tail was truncated)", v.head.Seq, v.anchor.Seq)}
	case v.anchored && v.anchor.Seq > 0 && !v.anchorSeen:
		r.Broken = &AuditBreak{Seq: v.anchor.Seq, Problem: "the anchored entry is not in the chain"}
	default:
		r.AnchorLag = v.head.Seq - v.anchor.Seq
	}
	return r
}

// short abbreviates a hash for a message.
func short(h string) string {
	if len(h) > 12 {
		return h[:12] + "…"
	}
	return h
}
