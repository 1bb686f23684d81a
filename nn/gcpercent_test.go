package nn

import (
	"runtime/debug"
	"testing"
)

// TestSetTrainingGC checks that SetTrainingGC sets TrainingGCPercent when
// the environment says nothing, and leaves the collector's target alone
// when GOGC or GOMEMLIMIT is set.
func TestSetTrainingGC(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	for _, tc := range []struct {
		name, gogc, limit string
		want              int
	}{
		{"environment silent", "", "", TrainingGCPercent},
		{"GOGC set", "100", "", 100},
		{"GOMEMLIMIT set", "", "1GiB", 100},
	} {
		t.Setenv("GOGC", tc.gogc)
		t.Setenv("GOMEMLIMIT", tc.limit)
		debug.SetGCPercent(100)
		got := SetTrainingGC()
		now := debug.SetGCPercent(100)
		if got != tc.want || now != tc.want {
			t.Errorf("%s: got %d (in force %d), want %d", tc.name, got, now, tc.want)
		}
	}
}
