package domain

import (
	"time"

	"github.com/google/uuid"
)

// Limits on passes.
const (
	// MaxBatchPasses is the most passes one RecordPasses call takes.
	MaxBatchPasses = 1000
	// MaxFamilyPerPass is the most dependants a guardian passes with at once.
	MaxFamilyPerPass = 20
)

// Statuses of a BatchItem.
const (
	BatchAccepted  = "accepted"
	BatchDuplicate = "duplicate"
	BatchRejected  = "rejected"
)

// ValidatePassShape checks what a pass says about itself, before any lookup.
func ValidatePassShape(cmd RecordPass) error {
	switch cmd.Method {
	case MethodSelfScan, MethodStaffScan, MethodManual:
	default:
		return Invalid("method", "must be self_scan, staff_scan or manual")
	}
	switch cmd.Direction {
	case DirectionIn, DirectionOut:
	default:
		return Invalid("direction", "must be in or out")
	}
	if cmd.VenueID == uuid.Nil {
		return Invalid("venue_id", "is required")
	}
	if len(cmd.FamilyMemberIDs) > 0 {
		if cmd.Method != MethodSelfScan {
			return Invalid("family_member_ids", "are allowed only with a self scan")
		}
		if len(cmd.FamilyMemberIDs) > MaxFamilyPerPass {
			return Invalid("family_member_ids", "has %d members, at most %d allowed", len(cmd.FamilyMemberIDs), MaxFamilyPerPass)
		}
		seen := make(map[uuid.UUID]bool, len(cmd.FamilyMemberIDs))
		for _, id := range cmd.FamilyMemberIDs {
			if id == uuid.Nil || seen[id] {
				return Invalid("family_member_ids", "must be distinct person ids")
			}
			seen[id] = true
		}
	}
	return nil
}

// ValidateOccurredAt checks a device's time against the ledger's clock:
// not beyond the clock skew in the future, not older than the retention.
func ValidateOccurredAt(at, now time.Time, skew, retention time.Duration) error {
	if at.After(now.Add(skew)) {
		return Invalid("occurred_at", "is more than %s in the future", skew)
	}
	if retention > 0 && at.Before(now.Add(-retention)) {
		return Invalid("occurred_at", "is older than the retention period (%s)", retention)
	}
	return nil
}
