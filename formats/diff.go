package formats

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"math"
	"slices"

	"github.com/ckptkit/ckpt/tensor"
)

// DiffReport is the result of Diff.
type DiffReport struct {
	// OnlyA and OnlyB list the tensor names found in one checkpoint only,
	// in that checkpoint's order.
	OnlyA []string `json:"only_a"`
	OnlyB []string `json:"only_b"`
	// Mismatched lists the common names whose dtype or shape differ.
	Mismatched []Mismatch `json:"mismatched"`
	// Tensors compares the values of every common name whose shapes are
	// equal, in A's order.
	Tensors []TensorDiff `json:"tensors"`
	// NotCompared lists the names that both checkpoints have where one
	// or both are skipped tensors (Checkpoint.Skipped): their values cannot
	// be read, so the checkpoints are not known to be equal.
	NotCompared []string `json:"not_compared,omitempty"`
	// ATol is the tolerance Equal applies.
	ATol float64 `json:"atol"`
	// MetaOnlyA and MetaOnlyB list the metadata keys (non-tensor values
	// such as epoch, arch, hyper-parameters) found in one checkpoint only,
	// in that checkpoint's order; MetaDiffer the common keys whose values
	// differ, in A's order. Values are compared as the text
	// Checkpoint.Meta holds. A safetensors file's "format" entry (the
	// framework marker that Save and transformers write) is compared only
	// with another safetensors file's.
	MetaOnlyA  []string   `json:"meta_only_a,omitempty"`
	MetaOnlyB  []string   `json:"meta_only_b,omitempty"`
	MetaDiffer []MetaDiff `json:"meta_differ,omitempty"`
}

// MetaDiff is a metadata key whose values differ.
type MetaDiff struct {
	Key string `json:"key"`
	A   string `json:"a"`
	B   string `json:"b"`
}

// Mismatch is a common tensor name with a different dtype or shape.
type Mismatch struct {
	Name   string       `json:"name"`
	DTypeA tensor.DType `json:"dtype_a"`
	DTypeB tensor.DType `json:"dtype_b"`
	ShapeA []int64      `json:"shape_a"`
	ShapeB []int64      `json:"shape_b"`
}

// TensorDiff compares the values of one tensor present in both checkpoints.
type TensorDiff struct {
	Name string `json:"name"`
	// BytesEqual is set when dtypes match and the contiguous bytes are
	// identical.
	BytesEqual bool `json:"bytes_equal"`
	// MaxAbsDiff is the largest |a-b| over the elements, computed in
	// float64 (0 when BytesEqual). NaN against NaN counts as equal; NaN
	// against a number, or infinities of different sign, give +Inf, which
	// JSON encodes as the string "inf".
	MaxAbsDiff float64 `json:"max_abs_diff"`
}

// MarshalJSON encodes the diff with +Inf as "inf", which JSON numbers
// cannot hold.
func (d TensorDiff) MarshalJSON() ([]byte, error) {
	type plain TensorDiff
	if math.IsInf(d.MaxAbsDiff, 0) {
		return json.Marshal(struct {
			plain
			MaxAbsDiff string `json:"max_abs_diff"`
		}{plain(d), "inf"})
	}
	return json.Marshal(plain(d))
}

// Equal reports whether the checkpoints are equal: TensorsEqual, and the
// same metadata keys with the same values.
func (r *DiffReport) Equal() bool {
	return r.MetaEqual() && r.TensorsEqual()
}

// MetaEqual reports whether the checkpoints have the same metadata keys
// with the same values.
func (r *DiffReport) MetaEqual() bool {
	return len(r.MetaOnlyA) == 0 && len(r.MetaOnlyB) == 0 && len(r.MetaDiffer) == 0
}

// TensorsEqual reports whether the checkpoints hold the same tensors: the
// same names, shapes and dtypes with identical bytes; or, when ATol > 0,
// the same names and shapes with every value within ATol (dtypes may then
// differ, as after a cast). Metadata is not compared.
func (r *DiffReport) TensorsEqual() bool {
	if len(r.OnlyA) > 0 || len(r.OnlyB) > 0 || len(r.NotCompared) > 0 {
		return false
	}
	for _, m := range r.Mismatched {
		if !slices.Equal(m.ShapeA, m.ShapeB) || r.ATol <= 0 {
			return false
		}
	}
	for _, t := range r.Tensors {
		if !t.BytesEqual && !(r.ATol > 0 && t.MaxAbsDiff <= r.ATol) {
			return false
		}
	}
	return true
}

// Diff compares checkpoints a and b by tensor name, streaming every common
// tensor's elements, and their metadata by key; atol is recorded for
// DiffReport.Equal.
func Diff(a, b *Checkpoint, atol float64) (*DiffReport, error) {
	r := &DiffReport{ATol: atol}
	diffMeta(r, a, b)
	inA := map[string]*tensor.Tensor{}
	for _, nt := range a.Tensors {
		if _, dup := inA[nt.Name]; !dup {
			inA[nt.Name] = nt.Tensor
		}
	}
	skA, skB := skippedNames(a), skippedNames(b)
	inB := map[string]*tensor.Tensor{}
	for _, nt := range b.Tensors {
		if _, dup := inB[nt.Name]; !dup {
			inB[nt.Name] = nt.Tensor
		}
		if _, ok := inA[nt.Name]; !ok && !skA[nt.Name] {
			r.OnlyB = append(r.OnlyB, nt.Name)
		}
	}
	done := map[string]bool{}
	for _, nt := range a.Tensors {
		if done[nt.Name] {
			continue
		}
		done[nt.Name] = true
		tb, ok := inB[nt.Name]
		if !ok {
			if skB[nt.Name] {
				r.NotCompared = append(r.NotCompared, nt.Name)
			} else {
				r.OnlyA = append(r.OnlyA, nt.Name)
			}
			continue
		}
		ta := nt.Tensor
		sameShape := slices.Equal(ta.Shape, tb.Shape)
		if ta.DType != tb.DType || !sameShape {
			r.Mismatched = append(r.Mismatched, Mismatch{nt.Name, ta.DType, tb.DType, ta.Shape, tb.Shape})
		}
		if !sameShape {
			continue
		}
		td, err := compare(nt.Name, ta, tb)
		if err != nil {
			return nil, err
		}
		r.Tensors = append(r.Tensors, td)
	}
	for _, s := range a.Skipped {
		if _, ok := inB[s.Name]; ok || skB[s.Name] {
			r.NotCompared = append(r.NotCompared, s.Name)
		} else {
			r.OnlyA = append(r.OnlyA, s.Name)
		}
	}
	for _, s := range b.Skipped {
		if _, ok := inA[s.Name]; !ok && !skA[s.Name] {
			r.OnlyB = append(r.OnlyB, s.Name)
		}
	}
	return r, nil
}

// diffMeta compares the metadata of a and b.
func diffMeta(r *DiffReport, a, b *Checkpoint) {
	marker := func(c, other *Checkpoint, key string) bool {
		st := func(c *Checkpoint) bool {
			return c.Format == FormatSafetensors || c.Format == FormatSafetensorsSharded
		}
		return key == "format" && st(c) && !st(other)
	}
	inB := make(map[string]string, len(b.Meta))
	for _, m := range b.Meta {
		if !marker(b, a, m.Key) {
			inB[m.Key] = m.Value
		}
	}
	inA := make(map[string]bool, len(a.Meta))
	for _, m := range a.Meta {
		if marker(a, b, m.Key) {
			continue
		}
		inA[m.Key] = true
		v, ok := inB[m.Key]
		switch {
		case !ok:
			r.MetaOnlyA = append(r.MetaOnlyA, m.Key)
		case v != m.Value:
			r.MetaDiffer = append(r.MetaDiffer, MetaDiff{m.Key, m.Value, v})
		}
	}
	for _, m := range b.Meta {
		if _, ok := inB[m.Key]; ok && !inA[m.Key] {
			r.MetaOnlyB = append(r.MetaOnlyB, m.Key)
		}
	}
}

func skippedNames(c *Checkpoint) map[string]bool {
	m := make(map[string]bool, len(c.Skipped))
	for _, s := range c.Skipped {
		m[s.Name] = true
	}
	return m
}

// compare streams two tensors of equal shape side by side.
func compare(name string, a, b *tensor.Tensor) (TensorDiff, error) {
	td := TensorDiff{Name: name, BytesEqual: a.DType == b.DType}
	ra, rb := stream(a), stream(b)
	defer ra.Close()
	defer rb.Close()
	const chunk = 1 << 16 // elements per step
	ea, eb := int64(a.DType.Size()), int64(b.DType.Size())
	// Buffers of the tensor's size when smaller: a 256 KiB pair, zeroed for
	// each of many small tensors, was most of a diff of a small model.
	n := min(a.NumElements(), chunk)
	ba, bb := make([]byte, n*ea), make([]byte, n*eb)
	for left := a.NumElements(); left > 0; {
		k := min(left, chunk)
		if _, err := io.ReadFull(ra, ba[:k*ea]); err != nil {
			return td, err
		}
		if _, err := io.ReadFull(rb, bb[:k*eb]); err != nil {
			return td, err
		}
		if td.BytesEqual && bytes.Equal(ba[:k*ea], bb[:k*eb]) {
			left -= k
			continue
		}
		td.BytesEqual = false
		bothInt64 := a.DType == tensor.Int64 && b.DType == tensor.Int64
		for i := int64(0); i < k; i++ {
			d := absDiff(value(a.DType, ba[i*ea:]), value(b.DType, bb[i*eb:]))
			if d == 0 && bothInt64 && !bytes.Equal(ba[i*ea:(i+1)*ea], bb[i*eb:(i+1)*eb]) {
				d = 1 // distinct int64 values beyond 2^53 that float64 merges
			}
			if d > td.MaxAbsDiff || math.IsNaN(d) {
				td.MaxAbsDiff = d
			}
		}
		left -= k
	}
	return td, nil
}

func absDiff(x, y float64) float64 {
	switch {
	case math.IsNaN(x) && math.IsNaN(y):
		return 0
	case math.IsNaN(x) || math.IsNaN(y):
		return math.Inf(1)
	case x == y: // equal infinities included
		return 0
	}
	return math.Abs(x - y)
}

// value decodes one little-endian element as float64 (exact for every
// dtype except int64 beyond 2^53).
func value(dt tensor.DType, b []byte) float64 {
	le := binary.LittleEndian
	switch dt {
	case tensor.Float32:
		return float64(math.Float32frombits(le.Uint32(b)))
	case tensor.Float64:
		return math.Float64frombits(le.Uint64(b))
	case tensor.Float16:
		return float64(tensor.Float16ToFloat32(le.Uint16(b)))
	case tensor.BFloat16:
		return float64(tensor.BFloat16ToFloat32(le.Uint16(b)))
	case tensor.Int8:
		return float64(int8(b[0]))
	case tensor.Uint8:
		return float64(b[0])
	case tensor.Bool:
		if b[0] != 0 {
			return 1
		}
		return 0
	case tensor.Int16:
		return float64(int16(le.Uint16(b)))
	case tensor.Int32:
		return float64(int32(le.Uint32(b)))
	case tensor.Int64:
		return float64(int64(le.Uint64(b)))
	}
	return math.NaN()
}

// stream returns the tensor's contiguous little-endian bytes as a reader.
func stream(t *tensor.Tensor) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		_, err := t.WriteTo(pw)
		pw.CloseWithError(err)
	}()
	return pr
}
