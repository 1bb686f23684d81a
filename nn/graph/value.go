package graph

import (
	"fmt"
	"math"

	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/tensor"
)

// DType is the element type of a Value. Float32 values are *nn.Tensor, so
// gradients flow through them; the other types are data for shape
// arithmetic, indices, masks and integer or double-precision ops.
type DType uint8

// The element types a Value may have.
const (
	Invalid DType = iota
	Float32
	Float64
	Float16
	BFloat16
	Int8
	Int16
	Int32
	Int64
	Uint8
	Uint16
	Uint32
	Uint64
	Bool
)

var dtypeNames = [...]string{"invalid", "float32", "float64", "float16", "bfloat16", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "bool"}

// String returns the type's name, such as "float32".
func (d DType) String() string {
	if int(d) < len(dtypeNames) {
		return dtypeNames[d]
	}
	return fmt.Sprintf("dtype(%d)", uint8(d))
}

// IsFloat reports whether d is a floating-point type.
func (d DType) IsFloat() bool { return d >= Float32 && d <= BFloat16 }

// IsInt reports whether d is an integer type (Bool excluded).
func (d DType) IsInt() bool { return d >= Int8 && d <= Uint64 }

// Value is one named value of a graph: a dense row-major array of one DType.
// Exactly one of its stores is used: an *nn.Tensor for Float32, float64s for
// Float64, Float16 and BFloat16 (rounded to the type), int64s for the
// integer types and Bool (0 or 1). A Value is immutable once made: ops
// return new Values.
type Value struct {
	dtype DType
	shape []int
	f     *nn.Tensor
	x     []float64
	i     []int64
}

// FromTensor wraps a float32 tensor; gradients recorded on t flow through
// the ops that use the Value.
func FromTensor(t *nn.Tensor) *Value {
	return &Value{dtype: Float32, shape: append([]int{}, t.Shape()...), f: t}
}

// FromFloat64s makes a Value of a floating type from float64 elements,
// rounding them to dt (Float32 makes a tensor that does not require grad).
func FromFloat64s(dt DType, shape []int, v []float64) *Value {
	return Make(dt, shape, v)
}

// FromInt64s makes a Value of an integer type or Bool from int64 elements,
// wrapping them to dt's width as a C cast does.
func FromInt64s(dt DType, shape []int, v []int64) *Value {
	if dt.IsFloat() {
		f := make([]float64, len(v))
		for k, e := range v {
			f[k] = float64(e)
		}
		return Make(dt, shape, f)
	}
	out := make([]int64, len(v))
	for k, e := range v {
		out[k] = wrapInt(dt, e)
	}
	return &Value{dtype: dt, shape: cloneShape(shape), i: out}
}

// Make builds a Value of type dt from float64 elements: floats are rounded
// to dt, integers are truncated toward zero and wrapped to dt's width, Bool
// is v != 0. len(v) must equal the product of shape.
func Make(dt DType, shape []int, v []float64) *Value {
	s := cloneShape(shape)
	switch {
	case dt == Float32:
		d := make([]float32, len(v))
		for k, e := range v {
			d[k] = float32(e)
		}
		return &Value{dtype: dt, shape: s, f: nn.New(d, s...)}
	case dt.IsFloat():
		d := make([]float64, len(v))
		for k, e := range v {
			d[k] = roundFloat(dt, e)
		}
		return &Value{dtype: dt, shape: s, x: d}
	case dt == Bool:
		d := make([]int64, len(v))
		for k, e := range v {
			if e != 0 {
				d[k] = 1
			}
		}
		return &Value{dtype: dt, shape: s, i: d}
	default:
		d := make([]int64, len(v))
		for k, e := range v {
			d[k] = wrapInt(dt, floatToInt(e))
		}
		return &Value{dtype: dt, shape: s, i: d}
	}
}

// Scalar64 returns a 0-dimensional Int64 value.
func Scalar64(v int64) *Value { return &Value{dtype: Int64, shape: []int{}, i: []int64{v}} }

// floatToInt truncates toward zero; NaN and out-of-range values saturate
// the way x86 conversions do (the minimum int64).
func floatToInt(e float64) int64 {
	if math.IsNaN(e) || e >= 9.223372036854775807e18 || e < -9.223372036854775808e18 {
		return math.MinInt64
	}
	return int64(e)
}

func roundFloat(dt DType, e float64) float64 {
	switch dt {
	case Float16:
		return float64(tensor.Float16ToFloat32(tensor.Float32ToFloat16(float32(e))))
	case BFloat16:
		return float64(tensor.BFloat16ToFloat32(tensor.Float32ToBFloat16(float32(e))))
	case Float32:
		return float64(float32(e))
	}
	return e
}

func wrapInt(dt DType, e int64) int64 {
	switch dt {
	case Int8:
		return int64(int8(e))
	case Int16:
		return int64(int16(e))
	case Int32:
		return int64(int32(e))
	case Uint8:
		return int64(uint8(e))
	case Uint16:
		return int64(uint16(e))
	case Uint32:
		return int64(uint32(e))
	case Bool:
		if e != 0 {
			return 1
		}
		return 0
	}
	return e
}

func cloneShape(s []int) []int { return append([]int{}, s...) }

// DType returns the element type.
func (v *Value) DType() DType { return v.dtype }

// Shape returns the dimensions; the caller must not modify them.
func (v *Value) Shape() []int { return v.shape }

// Rank returns the number of dimensions.
func (v *Value) Rank() int { return len(v.shape) }

// Numel returns the number of elements.
func (v *Value) Numel() int {
	n := 1
	for _, d := range v.shape {
		n *= d
	}
	return n
}

// Tensor returns the float32 tensor of a Float32 value, or nil.
func (v *Value) Tensor() *nn.Tensor { return v.f }

// Float64s returns the elements as float64 (a copy for Float32 and the
// integer types; the Value's own slice for the other floating types, which
// the caller must not modify).
func (v *Value) Float64s() []float64 {
	switch {
	case v.f != nil:
		d := v.f.Data()
		out := make([]float64, len(d))
		for k, e := range d {
			out[k] = float64(e)
		}
		return out
	case v.x != nil || v.dtype.IsFloat():
		return v.x
	default:
		out := make([]float64, len(v.i))
		for k, e := range v.i {
			if v.dtype == Uint64 {
				out[k] = float64(uint64(e))
			} else {
				out[k] = float64(e)
			}
		}
		return out
	}
}

// Int64s returns the elements as int64: the Value's own slice for integer
// and Bool values (the caller must not modify it), floats truncated
// otherwise.
func (v *Value) Int64s() []int64 {
	if !v.dtype.IsFloat() {
		return v.i
	}
	f := v.Float64s()
	out := make([]int64, len(f))
	for k, e := range f {
		out[k] = floatToInt(e)
	}
	return out
}

// Ints returns the elements as ints (shape arithmetic).
func (v *Value) Ints() []int {
	s := v.Int64s()
	out := make([]int, len(s))
	for k, e := range s {
		out[k] = int(e)
	}
	return out
}

// WithShape returns a Value sharing v's elements with a new shape of the
// same element count; float32 reshapes are recorded by autograd.
func (v *Value) WithShape(shape []int) *Value {
	out := *v
	out.shape = cloneShape(shape)
	if v.f != nil {
		out.f = v.f.Reshape(shape...)
	}
	return &out
}

// Cast converts v to dt: floats to integers truncate toward zero, integers
// wrap, anything to Bool is != 0. A float32-to-float32 cast returns v.
func (v *Value) Cast(dt DType) *Value {
	if dt == v.dtype {
		return v
	}
	if !v.dtype.IsFloat() && !dt.IsFloat() {
		return FromInt64s(dt, v.shape, v.i)
	}
	if !v.dtype.IsFloat() && dt.IsFloat() && v.dtype != Uint64 {
		return FromInt64s(dt, v.shape, v.i)
	}
	return Make(dt, v.shape, v.Float64s())
}

// String formats the type, the shape and, for small values, the elements.
func (v *Value) String() string {
	if v == nil {
		return "<none>"
	}
	s := fmt.Sprintf("%s%v", v.dtype, v.shape)
	if v.Numel() <= 8 {
		if v.dtype.IsFloat() {
			s += fmt.Sprint(v.Float64s())
		} else {
			s += fmt.Sprint(v.i)
		}
	}
	return s
}

// ShapeKey appends a compact encoding of the value's type and shape to b,
// the key of the per-input-shape caches.
func (v *Value) shapeKey(b []byte) []byte {
	b = append(b, byte(v.dtype), byte(len(v.shape)))
	for _, d := range v.shape {
		b = fmt.Appendf(b, "%d,", d)
	}
	return b
}
