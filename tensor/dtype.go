package tensor

import "fmt"

// DType is an element type, named as PyTorch names it.
type DType uint8

// The element types a stored tensor may have.
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
	Bool
)

var dtypeNames = [...]string{
	Invalid:  "invalid",
	Float32:  "float32",
	Float64:  "float64",
	Float16:  "float16",
	BFloat16: "bfloat16",
	Int8:     "int8",
	Int16:    "int16",
	Int32:    "int32",
	Int64:    "int64",
	Uint8:    "uint8",
	Bool:     "bool",
}

var dtypeSizes = [...]int{
	Float32: 4, Float64: 8, Float16: 2, BFloat16: 2,
	Int8: 1, Int16: 2, Int32: 4, Int64: 8, Uint8: 1, Bool: 1,
}

// DTypes lists every valid DType, in declaration order.
var DTypes = []DType{Float32, Float64, Float16, BFloat16, Int8, Int16, Int32, Int64, Uint8, Bool}

// String returns PyTorch's name for d, such as "float32".
func (d DType) String() string {
	if int(d) < len(dtypeNames) {
		return dtypeNames[d]
	}
	return fmt.Sprintf("dtype(%d)", uint8(d))
}

// Size returns the size of one element in bytes, or 0 for an invalid DType.
func (d DType) Size() int {
	if int(d) < len(dtypeSizes) {
		return dtypeSizes[d]
	}
	return 0
}

// Valid reports whether d is one of the listed element types.
func (d DType) Valid() bool { return d > Invalid && int(d) < len(dtypeNames) }

// IsFloat reports whether d is a floating-point type.
func (d DType) IsFloat() bool {
	return d == Float32 || d == Float64 || d == Float16 || d == BFloat16
}

// MarshalText encodes d as its name.
func (d DType) MarshalText() ([]byte, error) {
	if !d.Valid() {
		return nil, fmt.Errorf("tensor: invalid dtype %d", uint8(d))
	}
	return []byte(d.String()), nil
}

// UnmarshalText decodes a name accepted by [ParseDType].
func (d *DType) UnmarshalText(b []byte) error {
	v, err := ParseDType(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// ParseDType returns the DType named s. It accepts PyTorch's names
// ("float32", "bfloat16"), their torch-prefixed forms ("torch.float16") and
// the aliases torch defines ("float", "double", "half", "long", "int", "short").
func ParseDType(s string) (DType, error) {
	if len(s) > 6 && s[:6] == "torch." {
		s = s[6:]
	}
	switch s {
	case "float", "float32":
		return Float32, nil
	case "double", "float64":
		return Float64, nil
	case "half", "float16":
		return Float16, nil
	case "bfloat16":
		return BFloat16, nil
	case "int8":
		return Int8, nil
	case "short", "int16":
		return Int16, nil
	case "int", "int32":
		return Int32, nil
	case "long", "int64":
		return Int64, nil
	case "uint8":
		return Uint8, nil
	case "bool":
		return Bool, nil
	}
	return Invalid, fmt.Errorf("tensor: unknown dtype %q", s)
}
