package nn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/ckptkit/ckpt/tensor"
)

// Named is a stored tensor with its state_dict key ([tensor.Named], the one
// named-tensor type every reader and writer of ckpt uses).
type Named = tensor.Named

// Source is anything that holds named stored tensors ([tensor.Source]): a
// [StateDict], a [TensorMap], a checkpoint opened by package formats, or a
// [Builder]'s prefix and rename wrappers. Tensor returns nil for an unknown
// name.
type Source = tensor.Source

// StateDict is an ordered list of named stored tensors, the Go form of torch's
// state_dict. It implements [Source].
type StateDict []Named

// Names returns the keys in order.
func (sd StateDict) Names() []string {
	out := make([]string, len(sd))
	for i, n := range sd {
		out[i] = n.Name
	}
	return out
}

// Tensor returns the tensor stored under name, or nil.
func (sd StateDict) Tensor(name string) *tensor.Tensor {
	for _, n := range sd {
		if n.Name == name {
			return n.Tensor
		}
	}
	return nil
}

// TensorMap is an unordered [Source]; Names returns its keys sorted.
type TensorMap map[string]*tensor.Tensor

// Names returns the keys in lexical order.
func (m TensorMap) Names() []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Tensor returns the tensor stored under name, or nil.
func (m TensorMap) Tensor(name string) *tensor.Tensor { return m[name] }

// FromStored reads a stored tensor of any dtype into a new leaf compute
// tensor, widening float16 and bfloat16 exactly and rounding float64 and
// integers to float32.
func FromStored(st *tensor.Tensor) (*Tensor, error) {
	shape, err := intShape(st.Shape)
	if err != nil {
		return nil, err
	}
	v, err := st.Float32s()
	if err != nil {
		return nil, fmt.Errorf("nn: reading tensor: %w", err)
	}
	if len(v) != numel(shape) {
		return nil, fmt.Errorf("nn: stored tensor has %d values for shape %v", len(v), st.Shape)
	}
	return New(v, shape...), nil
}

// ToStored copies t's data into a contiguous float32 stored tensor.
func ToStored(t *Tensor) *tensor.Tensor {
	b := make([]byte, 4*len(t.data))
	for i, v := range t.data {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	shape := make([]int64, len(t.shape))
	for i, d := range t.shape {
		shape[i] = int64(d)
	}
	st, err := tensor.FromBytes(tensor.Float32, shape, b)
	if err != nil {
		panic(err) // unreachable: sizes are consistent by construction
	}
	return st
}

func int64Scalar(v int64) *tensor.Tensor {
	b := make([]byte, 8)
	binary.LittleEndian.PutUint64(b, uint64(v))
	st, err := tensor.FromBytes(tensor.Int64, []int64{}, b)
	if err != nil {
		panic(err)
	}
	return st
}

func intShape(s []int64) ([]int, error) {
	out := make([]int, len(s))
	n := int64(1)
	for i, d := range s {
		if d < 0 || (d > 0 && n > math.MaxInt32*int64(1<<20)/d) {
			return nil, fmt.Errorf("nn: stored tensor shape %v is too large", s)
		}
		n *= d
		out[i] = int(d)
	}
	return out, nil
}

// stateEntry is one target of StateDict / LoadStateDict.
type stateEntry struct {
	name  string
	t     *Tensor // float32 parameter or buffer
	i64   *int64  // int64 buffer
	i64t  *Int64Tensor
	param bool
}

func (b *Base) stateEntries() []stateEntry {
	var out []stateEntry
	b.walkModules(func(prefix string, m *Base) {
		for _, p := range m.params {
			if t := *p.p; t != nil {
				out = append(out, stateEntry{name: join(prefix, p.name), t: t, param: true})
			}
		}
		for _, r := range m.buffers {
			if !r.persistent {
				continue
			}
			if r.i64 != nil {
				out = append(out, stateEntry{name: join(prefix, r.name), i64: r.i64})
			} else if r.i64t != nil {
				if *r.i64t != nil {
					out = append(out, stateEntry{name: join(prefix, r.name), i64t: *r.i64t})
				}
			} else if *r.p != nil {
				out = append(out, stateEntry{name: join(prefix, r.name), t: *r.p})
			}
		}
	})
	return out
}

// StateDict returns the parameters and persistent buffers of the module and
// its descendants as stored tensors, in torch's state_dict order (each
// module's parameters, then its buffers, then its children). float32 values
// are copied; num_batches_tracked is an int64 scalar.
func (b *Base) StateDict() StateDict {
	var sd StateDict
	for _, e := range b.stateEntries() {
		if e.i64 != nil {
			sd = append(sd, Named{Name: e.name, Tensor: int64Scalar(*e.i64)})
		} else if e.i64t != nil {
			sd = append(sd, Named{Name: e.name, Tensor: e.i64t.stored()})
		} else {
			sd = append(sd, Named{Name: e.name, Tensor: ToStored(e.t)})
		}
	}
	return sd
}

// Mismatch is a state_dict entry whose stored shape or dtype cannot fill the
// module's tensor.
type Mismatch struct {
	Key       string
	WantShape []int64
	GotShape  []int64
	WantDType tensor.DType
	GotDType  tensor.DType
}

// LoadReport is the outcome of LoadStateDict, listing every problem at once.
type LoadReport struct {
	// Missing lists module keys the source lacks.
	Missing []string
	// Unexpected lists source keys the module lacks.
	Unexpected []string
	// Mismatched lists keys present in both with incompatible shape or dtype.
	Mismatched []Mismatch
	// Suggestions maps a missing key to the unexpected key that resembles it
	// most, when one is close (a typo, a "module." prefix).
	Suggestions map[string]string
	// Loaded counts the tensors copied into the module.
	Loaded int
}

// OK reports whether the report has no missing, unexpected or mismatched key.
func (r *LoadReport) OK() bool {
	return len(r.Missing) == 0 && len(r.Unexpected) == 0 && len(r.Mismatched) == 0
}

// String formats the report as torch words its load_state_dict error.
func (r *LoadReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "loaded %d tensors", r.Loaded)
	if len(r.Missing) > 0 {
		fmt.Fprintf(&b, "\nmissing key(s) in state_dict: %s.", quoteList(r.Missing))
		for _, k := range r.Missing {
			if s, ok := r.Suggestions[k]; ok {
				fmt.Fprintf(&b, "\n  %q: did you mean %q?", k, s)
			}
		}
	}
	if len(r.Unexpected) > 0 {
		fmt.Fprintf(&b, "\nunexpected key(s) in state_dict: %s.", quoteList(r.Unexpected))
	}
	for _, m := range r.Mismatched {
		if m.WantDType != m.GotDType && sameShape64(m.WantShape, m.GotShape) {
			fmt.Fprintf(&b, "\ndtype mismatch for %s: copying a param of dtype %s, the dtype in current model is %s.", m.Key, m.GotDType, m.WantDType)
		} else {
			fmt.Fprintf(&b, "\nsize mismatch for %s: copying a param with shape %s from checkpoint, the shape in current model is %s.", m.Key, pyShape(m.GotShape), pyShape(m.WantShape))
		}
	}
	return b.String()
}

func quoteList(ks []string) string {
	q := make([]string, len(ks))
	for i, k := range ks {
		q[i] = fmt.Sprintf("%q", k)
	}
	return strings.Join(q, ", ")
}

func pyShape(s []int64) string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = fmt.Sprint(d)
	}
	return "torch.Size([" + strings.Join(parts, ", ") + "])"
}

func sameShape64(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// LoadError is returned by LoadStateDict when the report forbids loading.
type LoadError struct {
	Report *LoadReport
}

// Error formats the error.
func (e *LoadError) Error() string {
	return "nn: error(s) in loading state_dict: " + strings.ReplaceAll(e.Report.String(), "\n", "\n\t")
}

// LoadStateDict copies the tensors of src into the module's parameters and
// persistent buffers, matching dotted keys, and returns a report of every
// missing, unexpected and mismatched key. Values of any float dtype are
// converted to float32 (float16 and bfloat16 exactly); integer dtypes load
// into int64 buffers. A missing num_batches_tracked is not reported (torch
// fills it with 0 for old checkpoints).
//
// Loading is all or nothing: when a shape or dtype mismatches, or when strict
// and a key is missing or unexpected, nothing is copied and a *[LoadError]
// carrying the report is returned. Tensors keep their identity (values are
// copied in), so optimizers holding them stay valid.
func (b *Base) LoadStateDict(src Source, strict bool) (*LoadReport, error) {
	defer MarkModified() // prepared modules must see the loaded weights
	r := &LoadReport{Suggestions: map[string]string{}}
	entries := b.stateEntries()
	known := map[string]bool{}
	type job struct {
		e  stateEntry
		st *tensor.Tensor
	}
	var jobs []job
	for _, e := range entries {
		known[e.name] = true
		st := src.Tensor(e.name)
		if st == nil {
			if e.i64 == nil {
				r.Missing = append(r.Missing, e.name)
			}
			continue
		}
		var want []int64
		wantDT := tensor.Float32
		if e.i64 != nil {
			want = []int64{}
			wantDT = tensor.Int64
		} else if e.i64t != nil {
			want = shape64(e.i64t.Shape)
			wantDT = tensor.Int64
		} else {
			want = make([]int64, len(e.t.shape))
			for i, d := range e.t.shape {
				want[i] = int64(d)
			}
		}
		okDT := st.DType.IsFloat()
		if e.i64 != nil || e.i64t != nil {
			okDT = !st.DType.IsFloat() && st.DType != tensor.Bool
		}
		if !sameShape64(want, st.Shape) || !okDT {
			r.Mismatched = append(r.Mismatched, Mismatch{Key: e.name, WantShape: want, GotShape: st.Shape, WantDType: wantDT, GotDType: st.DType})
			continue
		}
		jobs = append(jobs, job{e, st})
	}
	for _, n := range src.Names() {
		if !known[n] {
			r.Unexpected = append(r.Unexpected, n)
		}
	}
	for _, k := range r.Missing {
		if s, ok := closest(k, r.Unexpected); ok {
			r.Suggestions[k] = s
		}
	}
	if len(r.Mismatched) > 0 || (strict && (len(r.Missing) > 0 || len(r.Unexpected) > 0)) {
		return r, &LoadError{r}
	}
	// Decode everything first so a read error leaves the module untouched.
	vals := make([][]float32, len(jobs))
	ints := make([][]int64, len(jobs))
	for i, j := range jobs {
		if j.e.i64t != nil {
			v, err := int64Values(j.st)
			if err != nil {
				return r, fmt.Errorf("nn: reading %q: %w", j.e.name, err)
			}
			ints[i] = v
			continue
		}
		v, err := j.st.Float32s()
		if err != nil {
			return r, fmt.Errorf("nn: reading %q: %w", j.e.name, err)
		}
		if j.e.i64 == nil && len(v) != len(j.e.t.data) {
			return r, fmt.Errorf("nn: reading %q: %d values, want %d", j.e.name, len(v), len(j.e.t.data))
		}
		vals[i] = v
	}
	for i, j := range jobs {
		if j.e.i64 != nil {
			n, err := int64Value(j.st)
			if err != nil {
				return r, fmt.Errorf("nn: reading %q: %w", j.e.name, err)
			}
			*j.e.i64 = n
		} else if j.e.i64t != nil {
			copy(j.e.i64t.Data, ints[i])
		} else {
			copy(j.e.t.data, vals[i])
		}
		r.Loaded++
	}
	return r, nil
}

// int64Value reads an integer scalar exactly (Float32s would round above 2^24).
func int64Value(st *tensor.Tensor) (int64, error) {
	raw, err := st.Bytes()
	if err != nil {
		return 0, err
	}
	le := binary.LittleEndian
	switch {
	case st.DType == tensor.Int64 && len(raw) == 8:
		return int64(le.Uint64(raw)), nil
	case st.DType == tensor.Int32 && len(raw) == 4:
		return int64(int32(le.Uint32(raw))), nil
	case st.DType == tensor.Int16 && len(raw) == 2:
		return int64(int16(le.Uint16(raw))), nil
	case st.DType == tensor.Int8 && len(raw) == 1:
		return int64(int8(raw[0])), nil
	case st.DType == tensor.Uint8 && len(raw) == 1:
		return int64(raw[0]), nil
	}
	return 0, errors.New("not an integer scalar")
}

// closest returns the candidate nearest to key by edit distance, if it is
// within a third of the key's length.
func closest(key string, cands []string) (string, bool) {
	best, bd := "", -1
	for _, c := range cands {
		d := editDistance(key, c)
		if bd < 0 || d < bd {
			best, bd = c, d
		}
	}
	if bd < 0 || bd > len(key)/3+1 {
		return "", false
	}
	return best, true
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			c = min(c, prev[j]+1, cur[j-1]+1)
			cur[j] = c
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
