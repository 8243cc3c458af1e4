package eventstore

import "testing"

func TestVersionAtLeast(t *testing.T) {
	tests := []struct {
		v    string
		want bool
	}{
		{"2.12.0", true},
		{"2.15.2", true},
		{"3.0.0", true},
		{"2.11.9", false},
		{"2.9.25", false},
		{"2.12.0-beta.1", true},
		{"", false},
		{"garbage", false},
	}
	for _, tt := range tests {
		t.Run(tt.v, func(t *testing.T) {
			if got := versionAtLeast(tt.v, 2, 12); got != tt.want {
				t.Fatalf("versionAtLeast(%q, 2, 12) = %v, want %v", tt.v, got, tt.want)
			}
		})
	}
}
