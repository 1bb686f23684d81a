package models

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/tensor"
)

// classesSentinel is the number of classes the layouts are built with: a
// dimension of this size is the classifier's, and matches any size in the
// weights (re-headed models).
const classesSentinel = 7919

// layout is the state_dict of one architecture: every key with its shape,
// known without allocating a weight (nn.NewShapeBuilder).
type layout struct {
	spec     Spec
	class    string // the torch class of the root module ("ResNet")
	shapes   map[string][]int64
	required int // keys that weights must have: not auxiliary, not num_batches_tracked
}

var layouts struct {
	once sync.Once
	list []*layout
	// byClassifier indexes the layouts by their classifier key, the first
	// filter of a match.
	byClassifier map[string][]*layout
}

// allLayouts builds the layout of every registered architecture once per
// process (a few milliseconds: no tensor is allocated).
func allLayouts() []*layout {
	layouts.once.Do(func() {
		layouts.byClassifier = map[string][]*layout{}
		for _, name := range Names() {
			s, _ := Lookup(name)
			l, err := layoutOf(s)
			if err != nil {
				continue // an architecture whose builder needs values; never detected
			}
			layouts.list = append(layouts.list, l)
			layouts.byClassifier[s.Classifier] = append(layouts.byClassifier[s.Classifier], l)
		}
	})
	return layouts.list
}

func layoutOf(s Spec) (l *layout, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("models: %s: layout: %v", s.Name, r)
		}
	}()
	b := nn.NewShapeBuilder()
	cfg := Config{NumClasses: classesSentinel, Weights: b}
	if len(s.Aux) > 0 {
		cfg.AuxLogits = Yes
	}
	m, err := s.Build(cfg)
	if err != nil {
		return nil, err
	}
	l = &layout{spec: s, class: className(m), shapes: map[string][]int64{}}
	for _, ks := range b.Shapes() {
		l.shapes[ks.Key] = ks.Shape
		if !l.optional(ks.Key) {
			l.required++
		}
	}
	return l, nil
}

// className is the torch class name a module prints as (nn.Repr's first
// word).
func className(m nn.Module) string {
	if n, ok := m.(nn.TypeNamer); ok {
		return n.TypeName()
	}
	t := reflect.TypeOf(m)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Name()
}

// optional reports whether weights may lack key: an auxiliary head's, or a
// num_batches_tracked (torch fills it for old checkpoints).
func (l *layout) optional(key string) bool {
	return strings.HasSuffix(key, "num_batches_tracked") || l.aux(key)
}

func (l *layout) aux(key string) bool {
	for _, p := range l.spec.Aux {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// Mismatch is a key whose shape in the weights differs from the
// architecture's.
type Mismatch struct {
	Key             string
	Weights, Model  []int64
	ModelAnyClasses bool // Model's classifier dimension takes any size
}

// Match says how the tensors of a set of weights fit an architecture's
// state_dict, by keys and shapes; the number of classes may be any, and
// auxiliary heads (googlenet, inception_v3) and num_batches_tracked may be
// absent, as [Load] accepts them.
type Match struct {
	Arch string
	// Class is the torch class of the architecture's root module
	// ("ResNet", "GoogLeNet").
	Class string
	// Matched counts the keys present with the right shape.
	Matched    int
	Missing    []string
	Unexpected []string
	Mismatched []Mismatch
}

// Exact reports whether the weights fit the architecture exactly.
func (m *Match) Exact() bool {
	return len(m.Missing) == 0 && len(m.Unexpected) == 0 && len(m.Mismatched) == 0
}

// score ranks a match: the share of keys on either side that fit.
func (m *Match) score() float64 {
	return float64(m.Matched) / float64(m.Matched+len(m.Missing)+len(m.Unexpected)+len(m.Mismatched))
}

// MatchArch compares the tensors of src (a state_dict, found inside a
// training checkpoint as [Load] finds it) with architecture name's
// state_dict.
func MatchArch(name string, src nn.Source) (*Match, error) {
	s, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	for _, l := range allLayouts() {
		if l.spec.Name == s.Name {
			return l.match(stateDictOf(indexed(src), s.Classifier), true), nil
		}
	}
	return nil, fmt.Errorf("models: %s: no state_dict layout", name)
}

// match compares src with l. With full false it stops at the first
// difference (the returned match is then only good for Exact).
func (l *layout) match(src nn.Source, full bool) *Match {
	if l.spec.Convert != nil {
		src = l.spec.Convert(src)
	}
	m := &Match{Arch: l.spec.Name, Class: l.class}
	names := src.Names()
	if !full && len(names) < l.required {
		m.Missing = append(m.Missing, "") // too few keys to fit
		return m
	}
	seen := make(map[string]bool, len(names))
	hasAux := false
	classes := int64(-1) // the weights' number of classes, from the first classifier dimension seen
	for _, n := range names {
		seen[n] = true
		want, ok := l.shapes[n]
		if !ok {
			m.Unexpected = append(m.Unexpected, n)
			if !full {
				return m
			}
			continue
		}
		if l.aux(n) {
			hasAux = true
		}
		got := src.Tensor(n).Shape
		if !fits(got, want, &classes) {
			m.Mismatched = append(m.Mismatched, Mismatch{Key: n, Weights: got, Model: want, ModelAnyClasses: slices.Contains(want, classesSentinel)})
			if !full {
				return m
			}
			continue
		}
		m.Matched++
	}
	for k := range l.shapes {
		if !seen[k] && !strings.HasSuffix(k, "num_batches_tracked") && (!l.aux(k) || hasAux) {
			m.Missing = append(m.Missing, k)
		}
	}
	sort.Strings(m.Missing)
	return m
}

// fits reports whether a tensor of shape got fits a layout shape want,
// where a classesSentinel dimension takes any size, the same in every
// tensor: *classes is that size once a tensor has set it (-1 before).
func fits(got, want []int64, classes *int64) bool {
	if len(got) != len(want) {
		return false
	}
	c := *classes
	for i := range got {
		switch {
		case want[i] != classesSentinel:
			if got[i] != want[i] {
				return false
			}
		case c < 0:
			c = got[i]
		case got[i] != c:
			return false
		}
	}
	*classes = c
	return true
}

// Detect returns the registered architectures whose state_dict the tensors
// of src fit exactly by keys and shapes (any number of classes; auxiliary
// heads and num_batches_tracked optional), after finding the state_dict
// inside a training checkpoint as [Load] does. When none fits, closest is
// the match of the architecture that fits best (nil when no architecture
// shares a key with src). Candidates are first narrowed by their
// classifier's key, so a call costs one pass over the keys per remaining
// architecture.
func Detect(src nn.Source) (exact []string, closest *Match) {
	all := allLayouts()
	src = indexed(src)
	for classifier, ls := range layouts.byClassifier {
		sub := stateDictOf(src, classifier)
		if sub.Tensor(classifier) == nil {
			continue
		}
		for _, l := range ls {
			if l.match(sub, false).Exact() {
				exact = append(exact, l.spec.Name)
			}
		}
	}
	if len(exact) > 0 {
		sort.Strings(exact)
		return exact, nil
	}
	for _, l := range all {
		m := l.match(stateDictOf(src, l.spec.Classifier), true)
		if m.Matched == 0 {
			continue
		}
		if closest == nil || m.score() > closest.score() {
			closest = m
		}
	}
	return nil, closest
}

// ClassOf returns the torch class name of architecture name's root module
// ("ResNet" for resnet50), as whole-model pickles record it
// ("torchvision.models.resnet.ResNet").
func ClassOf(name string) string {
	for _, l := range allLayouts() {
		if l.spec.Name == name {
			return l.class
		}
	}
	return ""
}

// indexedSource is a Source whose tensors are found by a map, so that
// matching many layouts against it costs one lookup per key (a
// formats.Checkpoint looks names up one by one).
type indexedSource struct {
	names []string
	byKey map[string]*tensor.Tensor
}

func (s *indexedSource) Names() []string                   { return s.names }
func (s *indexedSource) Tensor(name string) *tensor.Tensor { return s.byKey[name] }

func indexed(src nn.Source) nn.Source {
	if s, ok := src.(*indexedSource); ok {
		return s
	}
	names := src.Names()
	s := &indexedSource{names: names, byKey: make(map[string]*tensor.Tensor, len(names))}
	for _, n := range names {
		s.byKey[n] = src.Tensor(n)
	}
	return s
}
