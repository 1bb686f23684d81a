package nn

import (
	"fmt"
	"math"

	"github.com/ckptkit/ckpt/tensor"
)

// Builder supplies weights to layer constructors by dotted path, like
// candle's VarBuilder: a constructor asks for "weight" with the shape it
// expects, and the builder looks up prefix+"weight" in its Source. Sub
// extends the prefix, so b.Sub("layer1").Sub("0") builds the module that the
// state_dict calls "layer1.0".
//
// A nil *Builder, or one without a Source, initialises tensors the way
// torch's layer constructors do (from the package generator, see
// [ManualSeed]). Problems are collected, not returned one by one: a missing
// or mis-shaped tensor is recorded in [Builder.Report] and replaced by a
// freshly initialised one, so construction always completes; call
// [Builder.Err] afterwards.
type Builder struct {
	src    Source
	prefix string
	st     *buildState
}

type buildState struct {
	used   map[string]bool
	report LoadReport
	err    error
	// shapes is set by NewShapeBuilder: every key asked for, with its shape.
	shapes *[]KeyShape
}

// KeyShape is a state_dict key and the shape of its tensor.
type KeyShape struct {
	Key   string
	Shape []int64
}

// NewShapeBuilder returns a builder that records the key and shape of every
// tensor a constructor asks for ([Builder.Shapes]) and hands out tensors of
// that shape with no elements, so that an architecture's state_dict layout
// is known without allocating or initialising its weights. A module built
// with it holds no values: it must not be run or loaded into.
func NewShapeBuilder() *Builder {
	return &Builder{st: &buildState{used: map[string]bool{}, shapes: new([]KeyShape)}}
}

// Shapes returns the keys and shapes a shape builder ([NewShapeBuilder])
// recorded, in the order constructors asked for them; nil for other
// builders.
func (b *Builder) Shapes() []KeyShape {
	if b == nil || b.st.shapes == nil {
		return nil
	}
	return *b.st.shapes
}

// recordShape records key for a shape builder and reports whether b is one.
func (b *Builder) recordShape(name string, shape []int) bool {
	if b == nil || b.st.shapes == nil {
		return false
	}
	s := make([]int64, len(shape))
	for i, d := range shape {
		s[i] = int64(d)
	}
	*b.st.shapes = append(*b.st.shapes, KeyShape{Key: b.Path(name), Shape: s})
	return true
}

// NewBuilder returns a builder reading from src (nil for fresh
// initialisation).
func NewBuilder(src Source) *Builder {
	return &Builder{src: src, st: &buildState{used: map[string]bool{}}}
}

// Sub returns a builder for the child module name.
func (b *Builder) Sub(name string) *Builder {
	if b == nil {
		return nil
	}
	return &Builder{src: b.src, prefix: join(b.prefix, name), st: b.st}
}

// Path returns the dotted state_dict key of name under this builder.
func (b *Builder) Path(name string) string {
	if b == nil {
		return name
	}
	return join(b.prefix, name)
}

// Tensor returns the tensor stored at the builder's path plus name, which
// must have the given shape, or, when there is no source, a new tensor of that
// shape filled by init (zeros when init is nil).
func (b *Builder) Tensor(name string, shape []int, init func(*Tensor)) *Tensor {
	fresh := func() *Tensor {
		t := Zeros(shape...)
		if init != nil {
			init(t)
		}
		return t
	}
	if b.recordShape(name, shape) {
		return &Tensor{shape: append([]int(nil), shape...)}
	}
	if b == nil || b.src == nil {
		return fresh()
	}
	key := b.Path(name)
	b.st.used[key] = true
	st := b.src.Tensor(key)
	if st == nil {
		b.st.report.Missing = append(b.st.report.Missing, key)
		return fresh()
	}
	want := make([]int64, len(shape))
	for i, d := range shape {
		want[i] = int64(d)
	}
	if !sameShape64(want, st.Shape) || !st.DType.IsFloat() {
		b.st.report.Mismatched = append(b.st.report.Mismatched, Mismatch{Key: key, WantShape: want, GotShape: st.Shape, WantDType: tensor.Float32, GotDType: st.DType})
		return fresh()
	}
	t, err := FromStored(st)
	if err != nil {
		if b.st.err == nil {
			b.st.err = fmt.Errorf("nn: loading %q: %w", key, err)
		}
		return fresh()
	}
	b.st.report.Loaded++
	return t
}

// Int64 returns the integer scalar stored at the builder's path plus name, or
// def when there is no source or the key is absent (absence is not reported:
// it is how torch treats num_batches_tracked in old checkpoints).
func (b *Builder) Int64(name string, def int64) int64 {
	if b.recordShape(name, nil) {
		return def
	}
	if b == nil || b.src == nil {
		return def
	}
	key := b.Path(name)
	b.st.used[key] = true
	st := b.src.Tensor(key)
	if st == nil {
		return def
	}
	v, err := int64Value(st)
	if err != nil {
		b.st.report.Mismatched = append(b.st.report.Mismatched, Mismatch{Key: key, WantShape: []int64{}, GotShape: st.Shape, WantDType: tensor.Int64, GotDType: st.DType})
		return def
	}
	b.st.report.Loaded++
	return v
}

// Report returns what the builder loaded so far and what went wrong: missing
// and mismatched keys, and the source keys nobody asked for (unexpected).
func (b *Builder) Report() *LoadReport {
	if b == nil || b.src == nil {
		return &LoadReport{Suggestions: map[string]string{}}
	}
	r := b.st.report
	r.Unexpected = nil
	for _, n := range b.src.Names() {
		if !b.st.used[n] {
			r.Unexpected = append(r.Unexpected, n)
		}
	}
	r.Suggestions = map[string]string{}
	for _, k := range r.Missing {
		if s, ok := closest(k, r.Unexpected); ok {
			r.Suggestions[k] = s
		}
	}
	return &r
}

// Err returns a read error, or a *[LoadError] when any key was missing,
// mismatched or (since every key should be consumed) unexpected; nil when the
// source matched the model exactly.
func (b *Builder) Err() error {
	if b == nil {
		return nil
	}
	if b.st.err != nil {
		return b.st.err
	}
	if r := b.Report(); !r.OK() {
		return &LoadError{r}
	}
	return nil
}

// uniformInit returns an initialiser drawing from U(-bound, bound).
func uniformInit(bound float64) func(*Tensor) {
	return func(t *Tensor) {
		rng.Lock()
		for i := range t.data {
			t.data[i] = float32((2*rng.r.Float64() - 1) * bound)
		}
		rng.Unlock()
	}
}

// fanInBound is 1/sqrt(fan_in): torch's default bound for Linear and Conv
// weights (kaiming_uniform with a=sqrt(5)) and biases.
func fanInBound(fanIn int) float64 {
	if fanIn <= 0 {
		return 0
	}
	return 1 / math.Sqrt(float64(fanIn))
}

func fillInit(v float32) func(*Tensor) {
	return func(t *Tensor) {
		for i := range t.data {
			t.data[i] = v
		}
	}
}
