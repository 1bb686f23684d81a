package nn

import "testing"

// TestSequentialReplacedChildRuns replaces a Sequential's numbered child in
// each way nn offers and checks that the forward pass (recorded and under
// Infer) runs the new child, and that the module tree and Len agree: a
// classifier replaced by name used to stay out of the list Forward runs.
func TestSequentialReplacedChildRuns(t *testing.T) {
	replace := map[string]func(s *Sequential, m Module){
		"SetChild":  func(s *Sequential, m Module) { s.SetChild("1", m) },
		"AddModule": func(s *Sequential, m Module) { s.AddModule("1", m) },
		"Set":       func(s *Sequential, m Module) { s.Set(-1, m) },
	}
	for name, f := range replace {
		t.Run(name, func(t *testing.T) {
			s := NewSequential(NewReLU(false), NewLinear(nil, 4, 10, true))
			head := NewLinear(nil, 4, 3, true)
			f(s, head)
			if s.Len() != 2 || s.At(1) != Module(head) {
				t.Fatalf("got %d layers, last %T, want 2 with the new head", s.Len(), s.At(1))
			}
			if got := s.Children()[1]; got != Module(head) {
				t.Errorf("registered child: got %T, want the new head", got)
			}
			x := New(make([]float32, 8), 2, 4)
			for mode, y := range map[string]*Tensor{"Forward": s.Forward(x), "Infer": Infer(s, x)} {
				if got := y.Shape(); len(got) != 2 || got[1] != 3 {
					t.Errorf("%s: got shape %v, want [2 3]", mode, got)
				}
			}
		})
	}
}
