package pickle

import (
	"bytes"
	"runtime"
	"testing"
)

// TestAllocationBudget builds pickles that repeat one cheap pattern until
// the validating pass's work estimate is just under or over MaxWork, and
// checks that what the VM really allocates stays under the 1 GiB bound
// (too large to commit as corpus files, so they are made here).
func TestAllocationBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates up to 1 GiB")
	}
	for _, tc := range []struct {
		name    string
		heavy   bool   // also run the largest accepted count (slow)
		pattern string // leaves the stack as it found it
		ops     int    // opcodes in the pattern
		cost    int64  // opCost of the pattern's opcodes
	}{
		{"marks", true, "(1", 2, opCost['('] + opCost['1']},
		{"ordered_dicts", false, "h\x00)R0", 4, opCost['h'] + opCost[')'] + opCost['R'] + opCost['0']},
		{"dicts", false, "}0", 2, opCost['}'] + opCost['0']},
		{"tuples", false, "NN\x860", 4, 2*opCost['N'] + opCost[0x86] + opCost['0']},
		{"ints", false, "J\xff\xff\xff\x7f0", 2, opCost['J'] + opCost['0']},
		// Kept alive and converted: a list of empty dicts, of lists.
		{"kept_dicts", true, "}a", 2, opCost['}'] + opCost['a']},
		{"kept_lists", false, "]a", 2, opCost[']'] + opCost['a']},
		{"kept_strings", false, "X\x04\x00\x00\x00abcda", 2, opCost['X'] + 8 + opCost['a']},
	} {
		for _, over := range []bool{false, true} {
			if !over && !tc.heavy {
				continue
			}
			// The largest count both limits accept, or a little more.
			n := min(int(MaxWork/tc.cost), MaxOps/tc.ops) - 64
			if over {
				n += 128
			}
			var b bytes.Buffer
			b.WriteString("\x80\x02ccollections\nOrderedDict\nq\x00]")
			for range n {
				b.WriteString(tc.pattern)
			}
			b.WriteString(".")
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, _, err := unpickle(b.Bytes(), nil)
			runtime.ReadMemStats(&after)
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%s x%d: %d bytes allocated, err %v", tc.name, n, alloc, err)
			if alloc > 1<<30 {
				t.Errorf("%s x%d: allocated %d bytes, limit 1 GiB", tc.name, n, alloc)
			}
			if !over && err != nil {
				t.Errorf("%s x%d: got %v, want success", tc.name, n, err)
			}
			if over && err == nil {
				t.Errorf("%s x%d: got success, want the work budget refused", tc.name, n)
			}
		}
	}
}
