package reactions

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/eventstore"
)

// A log message holds one event or a pack of them; eventstore.DecodeMessage
// reads it. The unmarshaler turns one such message into one watermill
// message whose payload holds only the envelopes the reaction acts on (often
// none), each with its position; the reaction's handler and the poison
// queue see just those.

// Metadata keys of the watermill messages the unmarshaler makes.
const (
	// metaSubject is the log message's subject.
	metaSubject = "ledger_subject"
	// metaSequence is the log message's stream sequence.
	metaSequence = "ledger_sequence"
	// metaDecodeError is set when the body could not be decoded; the
	// payload is then the raw body and the handler fails with this reason.
	metaDecodeError = "ledger_decode_error"
)

// errUndecodable marks a log message the unmarshaler could not read: a
// permanent failure, not retried, straight to the poison queue.
var errUndecodable = errors.New("reactions: log message cannot be decoded")

// wireEvent is an envelope with its position, as a watermill payload holds it.
type wireEvent struct {
	Position uint64 `json:"position"`
	domain.Envelope
}

// selector picks the events a reaction acts on. An event it cannot judge
// (its payload does not decode) is picked, so the reaction fails on it
// visibly instead of skipping it.
type selector func(e domain.Envelope) bool

// prefilter tells from an encoded envelope whether it may be one a reaction
// acts on; false must mean certainly not. Packs hold thousands of passes and
// a reaction acts on few of them: only the elements a prefilter lets through
// are decoded (it is eventstore.DecodeMessage's keep). A prefilter must also
// be monotone (true for a part of a body means true for the whole, as a test
// of contained substrings is): a pack it refuses as a whole is skipped
// without being split.
type prefilter func(raw []byte) bool

// unmarshaler implements the watermill-nats JetStream Unmarshaler for one
// reaction. It never fails: a body it cannot decode becomes a message that
// its handler refuses, so it reaches the poison queue with the reason.
type unmarshaler struct {
	reaction string
	maybe    prefilter
	pick     selector
}

// Unmarshal turns one log message into one watermill message.
func (u unmarshaler) Unmarshal(msg jetstream.Msg) (*message.Message, error) {
	var seq uint64
	if meta, err := msg.Metadata(); err == nil {
		seq = meta.Sequence.Stream
	}
	id := u.reaction + "-" + strconv.FormatUint(seq, 10)
	envs, err := eventstore.DecodeMessage(msg.Subject(), seq, msg.Data(), u.maybe)
	var m *message.Message
	if err != nil {
		m = message.NewMessage(id, append([]byte(nil), msg.Data()...))
		m.Metadata.Set(metaDecodeError, err.Error())
	} else {
		m = message.NewMessage(id, encodeEvents(envs, u.pick))
	}
	m.Metadata.Set(metaSubject, msg.Subject())
	m.Metadata.Set(metaSequence, strconv.FormatUint(seq, 10))
	return m, nil
}

// encodeEvents writes the picked envelopes as a JSON array of wireEvents.
func encodeEvents(envs []domain.Envelope, pick selector) []byte {
	out := make([]wireEvent, 0, 1)
	for _, e := range envs {
		if pick(e) {
			out = append(out, wireEvent{Position: e.Position, Envelope: e})
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		// Envelopes decoded from JSON always encode again.
		panic(fmt.Sprintf("reactions: encode events: %v", err))
	}
	return b
}

// eventsOf returns the envelopes a watermill message carries.
func eventsOf(m *message.Message) ([]domain.Envelope, error) {
	if reason := m.Metadata.Get(metaDecodeError); reason != "" {
		return nil, fmt.Errorf("%s (%s #%s): %w", reason, m.Metadata.Get(metaSubject), m.Metadata.Get(metaSequence), errUndecodable)
	}
	return decodeEvents(m.Payload)
}

func decodeEvents(payload []byte) ([]domain.Envelope, error) {
	var ws []wireEvent
	if err := json.Unmarshal(payload, &ws); err != nil {
		return nil, fmt.Errorf("reaction payload: %w: %w", err, errUndecodable)
	}
	envs := make([]domain.Envelope, len(ws))
	for i, w := range ws {
		envs[i] = w.Envelope
		envs[i].Position = w.Position
	}
	return envs, nil
}

// Prefilters and selectors of the reactions.

// mayBeAbnormalPass lets through a pass that holds one of the quoted values
// that make a pass abnormal ("deny", "yellow", "red", "positive"): whatever
// the whitespace of its JSON, an abnormal pass holds one of them.
func mayBeAbnormalPass(raw []byte) bool {
	return bytes.Contains(raw, []byte(`"`+domain.TypePassRecorded+`"`)) &&
		containsQuoted(raw, abnormalValues)
}

// abnormalValues are the values that make a pass abnormal, by first byte.
var abnormalValues = func() [256][]string {
	var t [256][]string
	for _, v := range []string{domain.DecisionDeny, domain.ColourRed, domain.ColourYellow, domain.NATPositive} {
		t[v[0]] = append(t[v[0]], v)
	}
	return t
}()

// containsQuoted tells whether b holds one of the words of table (indexed by
// their first byte) as a whole quoted string. It hops from quote to quote
// once, where a bytes.Contains per word would scan b once per word: a pack
// of passes is long and holds a quote every few bytes.
func containsQuoted(b []byte, table [256][]string) bool {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 || i+j+1 >= len(b) {
			return false
		}
		i += j + 1
		for _, w := range table[b[i]] {
			if end := i + len(w); end < len(b) && b[end] == '"' && string(b[i:end]) == w {
				return true
			}
		}
	}
}

// mayBeDeclaration lets through a submitted declaration.
func mayBeDeclaration(raw []byte) bool {
	return bytes.Contains(raw, []byte(`"`+domain.TypeArrivalDeclared+`"`)) ||
		bytes.Contains(raw, []byte(`"`+domain.TypeTruckPassDeclared+`"`))
}

// mayBeVenueReview lets through a venue review.
func mayBeVenueReview(raw []byte) bool {
	return bytes.Contains(raw, []byte(`"`+domain.TypeVenueReviewed+`"`))
}

// mayBeErasure lets through a person's erasure and a family member's
// registration.
func mayBeErasure(raw []byte) bool {
	return bytes.Contains(raw, []byte(`"`+domain.TypePersonErased+`"`)) ||
		bytes.Contains(raw, []byte(`"`+domain.TypePersonRegistered+`"`)) && bytes.Contains(raw, []byte(`guardian_id`))
}

// erasures picks the erasures and the family members' registrations (whose
// guardian may be being erased).
func erasures(e domain.Envelope) bool {
	return e.Type == domain.TypePersonErased || familyRegistration(e)
}

var familyRegistration = pickDecoded(domain.TypePersonRegistered,
	func(r *domain.PersonRegistered) bool { return r.GuardianID != uuid.Nil })

// mayBeAudited lets through an audited event (domain.IsAudited).
func mayBeAudited(raw []byte) bool {
	return containsQuoted(raw, auditedTypes)
}

// auditedTypes are the audited event types, by first byte.
var auditedTypes = func() [256][]string {
	var t [256][]string
	for _, v := range domain.AuditedTypes() {
		t[v[0]] = append(t[v[0]], v)
	}
	return t
}()

// audited picks the audited events.
func audited(e domain.Envelope) bool { return domain.IsAudited(e.Type) }

// abnormalPasses picks passes that must be reported to their district.
var abnormalPasses = pickDecoded(domain.TypePassRecorded,
	func(p *domain.PassRecorded) bool { return domain.PassIsAbnormal(*p) })

// submittedDeclarations picks arrival declarations and truck passes.
func submittedDeclarations(e domain.Envelope) bool {
	return e.Type == domain.TypeArrivalDeclared || e.Type == domain.TypeTruckPassDeclared
}

// venueApprovals picks the reviews that approved a venue.
var venueApprovals = pickDecoded(domain.TypeVenueReviewed,
	func(v *domain.VenueReviewed) bool { return v.Decision == domain.ReviewApprove })

// pickDecoded picks the events of type typ whose payload, decoded (as the
// pointer P that domain.Decode returns for typ), keep holds for. One that does not decode is picked all the same, so the
// reaction's handler meets it and its error is not silently dropped.
func pickDecoded[P domain.Event](typ string, keep func(P) bool) func(domain.Envelope) bool {
	return func(e domain.Envelope) bool {
		if e.Type != typ {
			return false
		}
		ev, err := domain.Decode(e)
		if err != nil {
			return true
		}
		return keep(ev.(P))
	}
}
