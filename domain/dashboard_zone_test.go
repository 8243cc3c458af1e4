package domain

import (
	"testing"
	"time"
)

func TestCheckDashboardZone(t *testing.T) {
	now := time.Date(2026, 12, 1, 23, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		zone string
		ok   bool
	}{
		{"Asia/Shanghai", true},
		{"UTC", true},
		{"Europe/Berlin", true},        // +01:00 and +02:00
		{"America/St_Johns", false},    // -03:30 and -02:30
		{"Asia/Kolkata", false},        // +05:30
		{"Asia/Kathmandu", false},      // +05:45
		{"Australia/Lord_Howe", false}, // +10:30, and +11:00 in summer
	} {
		t.Run(tt.zone, func(t *testing.T) {
			loc, err := time.LoadLocation(tt.zone)
			if err != nil {
				t.Skip(err)
			}
			if err := CheckDashboardZone(loc, now); (err == nil) != tt.ok {
				t.Fatalf("CheckDashboardZone = %v, want ok %v", err, tt.ok)
			}
		})
	}
}
