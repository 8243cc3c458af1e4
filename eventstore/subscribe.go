package eventstore

import (
	"bytes"
	"fmt"

	"github.com/checkin-ledger/ledger/domain"
)

// Durable consumers. Reactions follow the log with durable JetStream
// consumers of their own; this file is where their messages become events,
// so that no other package reads the store's bytes or computes positions.

// DecodeMessage returns the events of the log message at stream sequence seq
// on subject, with their positions. A body that is a JSON array is a pack
// (an envelope is an object; subject only names the message in errors). A
// one-event message is always decoded (a body that is not an envelope is an
// error). A pack's elements are
// decoded only when keep lets their encoded envelope through; keep must say
// true whenever an element may be one the caller wants, and be monotone
// (true for a part of a body means true for the whole, as a test of
// contained substrings is): a pack it refuses as a whole is skipped without
// being split. A nil keep keeps everything. Payloads alias body.
func DecodeMessage(subject string, seq uint64, body []byte, keep func(raw []byte) bool) ([]domain.Envelope, error) {
	body = bytes.TrimLeft(body, " \t\r\n")
	if len(body) == 0 || body[0] != '[' {
		var e domain.Envelope
		if err := decodeEnvelope(body, &e, nil); err != nil {
			return nil, fmt.Errorf("message at %d (%s): %w", seq, subject, err)
		}
		e.Position = PositionOf(seq, 0)
		return []domain.Envelope{e}, nil
	}
	if keep != nil && !keep(body) {
		// No element can pass: most packs of passes are all green.
		return nil, nil
	}
	var envs []domain.Envelope
	_, err := walkPack(body, func(i int, d *scanner) error {
		if keep != nil {
			start := d.I
			if err := skipElem(d); err != nil {
				return err
			}
			if !keep(d.B[start:d.I]) {
				return nil
			}
			d.I = start
		}
		var e domain.Envelope
		if err := decodeAt(d, &e, nil); err != nil {
			return fmt.Errorf("event %d: %w", i, err)
		}
		e.Position = PositionOf(seq, i)
		envs = append(envs, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pack at %d (%s): %w", seq, subject, err)
	}
	return envs, nil
}
