package pickle

import (
	"testing"
)

// TestCounter reads a MultiStepLR state_dict written by torch 1.13
// (testdata/gen/pickle_counter.py): its milestones are a
// collections.Counter({3: 1, 7: 2}), which must load as a dict of counts.
func TestCounter(t *testing.T) {
	f, err := Open("../testdata/pickle/multisteplr_state.pt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := map[string]any{}
	for _, m := range f.Meta {
		got[m.Path] = m.Value
	}
	for path, want := range map[string]int64{"milestones.3": 1, "milestones.7": 2, "last_epoch": 4} {
		v, ok := got[path]
		if !ok {
			t.Errorf("no metadata %q (have %v)", path, got)
			continue
		}
		if n, ok := v.(int64); !ok || n != want {
			t.Errorf("%s = %v (%T), want %d", path, v, v, want)
		}
	}
}
