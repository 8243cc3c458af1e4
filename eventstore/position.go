package eventstore

import (
	"strings"

	"github.com/checkin-ledger/ledger/domain"
)

// Positions.
//
// Several events share one JetStream message (a pack), so the stream
// sequence alone no longer names an event. An event's position is
//
//	position = streamSeq<<16 | indexInPack
//
// with index 0 for an ordinary one-event message. Positions are unique and
// grow with the log, and stay exact in JSON numbers (2^53) while the stream
// holds fewer than 2^37 messages.

// indexBits is the width of the index-in-pack part of a position.
const indexBits = 16

// maxPackEvents is the most events one pack may hold: its indexes must fit
// in indexBits.
const maxPackEvents = 1 << indexBits

// PositionOf returns the position of event index (0 for a one-event message)
// of the message at stream sequence seq.
func PositionOf(seq uint64, index int) uint64 {
	return seq<<indexBits | uint64(index)&(maxPackEvents-1)
}

// SeqOf splits a position into the stream sequence of its message and the
// event's index in that message.
func SeqOf(position uint64) (seq uint64, index int) {
	return position >> indexBits, int(position & (maxPackEvents - 1))
}

// Pack subjects: Record writes the events of the packed kinds as packs on
// these subjects, one JetStream message holding many events.
const (
	// packKind is the subject token under which packs live; no aggregate
	// may have this kind.
	packKind = "pack"
	// packPassSubject holds packs of pass events; they carry Nats-TTL.
	packPassSubject = SubjectPrefix + packKind + ".pass"
	// packAlertSubject holds packs of alerts, which expire with their
	// passes: they carry Nats-TTL too. (Logs written before it hold their
	// alerts on packEventSubject, kept.)
	packAlertSubject = SubjectPrefix + packKind + ".alert"
	// packEventSubject holds packs of the other packed kinds (health
	// records, audit entries); they never expire.
	packEventSubject = SubjectPrefix + packKind + ".event"
	// packPrefix starts every pack subject.
	packPrefix = SubjectPrefix + packKind + "."
	// packSubjects matches every pack subject.
	packSubjects = packPrefix + ">"
	// hdrPackCount is the number of events in a pack.
	hdrPackCount = "Ledger-Pack-Count"
)

// packSubjectOf returns the pack subject events of kind are written to, or
// "" when Record writes that kind as one message per event on its
// aggregate's subject (person, venue, declaration and anything not known as
// high-volume).
func packSubjectOf(kind string) string {
	switch kind {
	case domain.KindPass:
		return packPassSubject
	case domain.KindAlert:
		return packAlertSubject
	case domain.KindHealth, domain.KindAudit:
		return packEventSubject
	}
	return ""
}

// allPackSubjects are the pack subjects Record writes, each one chain
// (chain.go) and one entry of the dedup table's rebuild.
var allPackSubjects = []string{packPassSubject, packAlertSubject, packEventSubject}

// expires reports whether the events of kind expire (domain.PassExpiresAt):
// their messages carry a Nats-TTL counted from their occurred_at.
func expires(kind string) bool { return kind == domain.KindPass || kind == domain.KindAlert }

// packExpires reports whether the packs on subject carry a Nats-TTL.
func packExpires(subject string) bool {
	return subject == packPassSubject || subject == packAlertSubject
}

// isPackSubject reports whether a message subject is a pack's.
func isPackSubject(subj string) bool {
	return strings.HasPrefix(subj, packPrefix)
}

// pattern is a subject filter over aggregate names ("pass.*.<person>",
// "alert.>"), matched in Go against the aggregates inside packs: tokens split
// on '.', '*' matches one token, a final '>' one or more.
type pattern []string

func newPattern(filter string) pattern { return strings.Split(filter, ".") }

// match reports whether aggregate matches p.
func (p pattern) match(aggregate string) bool { return matchTokens(p, aggregate) }

// matchTokens is pattern.match over a string or bytes; it does not allocate.
func matchTokens[T string | []byte](p pattern, aggregate T) bool {
	rest := aggregate
	for i, tok := range p {
		if len(rest) == 0 {
			return false
		}
		if tok == ">" && i == len(p)-1 {
			return true
		}
		cur := rest
		rest = rest[len(rest):]
		for j := 0; j < len(cur); j++ {
			if cur[j] == '.' {
				cur, rest = cur[:j], cur[j+1:]
				if len(rest) == 0 {
					return false // a trailing dot: an empty token
				}
				break
			}
		}
		if tok != "*" && string(cur) != tok {
			return false
		}
	}
	return len(rest) == 0
}
