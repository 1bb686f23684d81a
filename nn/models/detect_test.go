package models

import (
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/tensor"
)

// TestLayouts checks that every registered architecture has a layout, and
// that the layout's keys and shapes are those of the built model's
// state_dict (for architectures small enough to build in a test).
func TestLayouts(t *testing.T) {
	start := time.Now()
	ls := allLayouts()
	t.Logf("%d layouts in %v", len(ls), time.Since(start))
	if got, want := len(ls), len(Names()); got != want {
		t.Fatalf("got %d layouts, want one per architecture (%d)", got, want)
	}
	for _, name := range []string{"resnet18", "squeezenet1_1", "mobilenet_v3_small", "googlenet", "densenet121", "shufflenet_v2_x0_5"} {
		t.Run(name, func(t *testing.T) {
			cfg := Config{NumClasses: classesSentinel}
			if s, _ := Lookup(name); len(s.Aux) > 0 {
				cfg.AuxLogits = Yes
			}
			m, err := Build(name, cfg)
			if err != nil {
				t.Fatal(err)
			}
			sd := m.StateDict()
			var l *layout
			for _, x := range ls {
				if x.spec.Name == name {
					l = x
				}
			}
			if len(sd) != len(l.shapes) {
				t.Errorf("got %d layout keys, want %d (the state_dict's)", len(l.shapes), len(sd))
			}
			for _, e := range sd {
				if want := e.Tensor.Shape; !slices.Equal(l.shapes[e.Name], want) && !(len(want) == 0 && len(l.shapes[e.Name]) == 0) {
					t.Errorf("%s: got shape %v, want %v", e.Name, l.shapes[e.Name], want)
				}
			}
		})
	}
}

// TestDetect builds architectures with fresh weights (some re-headed, with
// and without auxiliary heads, with a training checkpoint's prefix) and
// checks that Detect names exactly that architecture, and that weights of
// one architecture fit no other.
func TestDetect(t *testing.T) {
	tests := []struct {
		arch   string
		cfg    Config
		prefix string
	}{
		{"resnet18", Config{}, ""},
		{"resnet18", Config{NumClasses: 10}, "state_dict."},
		{"squeezenet1_0", Config{NumClasses: 3}, ""},
		{"mobilenet_v3_small", Config{}, "module."},
		{"googlenet", Config{AuxLogits: No, NumClasses: 5}, ""},
		{"googlenet", Config{AuxLogits: Yes, NumClasses: 5}, ""},
		{"shufflenet_v2_x0_5", Config{}, "model."},
	}
	for _, tt := range tests {
		t.Run(tt.arch+"/"+tt.prefix, func(t *testing.T) {
			m, err := Build(tt.arch, tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			var sd nn.StateDict
			for _, e := range m.StateDict() {
				sd = append(sd, nn.Named{Name: tt.prefix + e.Name, Tensor: e.Tensor})
			}
			exact, closest := Detect(sd)
			if !slices.Equal(exact, []string{tt.arch}) || closest != nil {
				t.Fatalf("got %v (closest %v), want exactly [%s]", exact, closest, tt.arch)
			}
			// Without the classifier's bias, nothing fits; the closest is
			// still the architecture, with one key missing.
			spec, _ := Lookup(tt.arch)
			bias := tt.prefix + strings.TrimSuffix(spec.Classifier, "weight") + "bias"
			var cut nn.StateDict
			for _, e := range sd {
				if e.Name != bias {
					cut = append(cut, e)
				}
			}
			if len(cut) == len(sd) {
				return
			}
			exact, closest = Detect(cut)
			if len(exact) != 0 || closest == nil || closest.Arch != tt.arch || len(closest.Missing) != 1 {
				t.Errorf("without the classifier bias: got %v, closest %+v, want none and closest %s with 1 missing", exact, closest, tt.arch)
			}
		})
	}
}

// TestDetectQuickstart detects the quick-start fixture (testdata/gen/
// quickstart.py: torchvision's squeezenet1_1 with 10 classes, float16).
func TestDetectQuickstart(t *testing.T) {
	src := openSource(t, filepath.Join("..", "..", "testdata", "quickstart", "squeezenet1_1.pt"))
	exact, _ := Detect(src)
	if !slices.Equal(exact, []string{"squeezenet1_1"}) {
		t.Errorf("got %v, want [squeezenet1_1]", exact)
	}
	m, err := MatchArch("squeezenet1_0", src)
	if err != nil {
		t.Fatal(err)
	}
	if m.Exact() || len(m.Mismatched) == 0 {
		t.Errorf("squeezenet1_0: got %+v, want mis-shaped keys", m)
	}
}

// layoutSource is a layout as weights: tensors with shapes and no data.
type layoutSource struct{ l *layout }

func (s layoutSource) Names() []string { return slices.Sorted(maps.Keys(s.l.shapes)) }

func (s layoutSource) Tensor(name string) *tensor.Tensor {
	sh, ok := s.l.shapes[name]
	if !ok {
		return nil
	}
	return &tensor.Tensor{DType: tensor.Float32, Shape: sh}
}

// TestLayoutsDistinct checks that detection is never ambiguous: the
// state_dict of every architecture fits that architecture alone.
func TestLayoutsDistinct(t *testing.T) {
	for _, l := range allLayouts() {
		exact, _ := Detect(layoutSource{l})
		if !slices.Equal(exact, []string{l.spec.Name}) {
			t.Errorf("%s's state_dict fits %v, want only itself", l.spec.Name, exact)
		}
	}
}

// BenchmarkDetect detects resnet50 from its state_dict layout: the cost of
// a detection once the layouts are built (they are built once per process,
// see TestLayouts' log).
func BenchmarkDetect(b *testing.B) {
	var src layoutSource
	for _, l := range allLayouts() {
		if l.spec.Name == "resnet50" {
			src = layoutSource{l}
		}
	}
	for b.Loop() {
		if exact, _ := Detect(src); len(exact) != 1 {
			b.Fatalf("got %v", exact)
		}
	}
}

// TestDetectClassCount checks that every classifier of a set of weights
// must agree on the number of classes: googlenet's auxiliary heads with
// 1000 classes and a main classifier with 5 fit no architecture.
func TestDetectClassCount(t *testing.T) {
	main, err := Build("googlenet", Config{AuxLogits: Yes, NumClasses: 5})
	if err != nil {
		t.Fatal(err)
	}
	aux, err := Build("googlenet", Config{AuxLogits: Yes})
	if err != nil {
		t.Fatal(err)
	}
	var sd nn.StateDict
	for _, e := range aux.StateDict() {
		if strings.HasPrefix(e.Name, "fc.") {
			e.Tensor = main.StateDict().Tensor(e.Name)
		}
		sd = append(sd, e)
	}
	exact, closest := Detect(sd)
	if len(exact) != 0 || closest == nil || closest.Arch != "googlenet" || len(closest.Mismatched) == 0 {
		t.Errorf("got %v, closest %+v; want none, googlenet closest with mis-shaped keys", exact, closest)
	}
}
