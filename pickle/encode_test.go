package pickle

import (
	"math"
	"math/big"
	"strings"
	"testing"

	"github.com/ckptkit/ckpt/tensor"
)

// TestEncodeRoundTrip encodes values of every kind and reads them back.
func TestEncodeRoundTrip(t *testing.T) {
	st := tensor.NewStorageBytes(make([]byte, 24))
	w := tensor.New(tensor.Float32, []int64{2, 3}, st)
	row := &tensor.Tensor{DType: tensor.Float32, Shape: []int64{3}, Stride: []int64{1}, Offset: 3, Storage: st}
	param := &tensor.Tensor{DType: tensor.Float32, Shape: []int64{6}, Stride: []int64{1}, Storage: st, RequiresGrad: true}
	huge, _ := new(big.Int).SetString("-123456789012345678901234567890", 10)
	shared := &Dict{Keys: []any{"lr"}, Values: []any{0.1}}
	many := make([]any, 2500) // more than one APPENDS batch
	for i := range many {
		many[i] = int64(i * 37)
	}
	tests := []struct {
		name string
		v    any
	}{
		{"scalars", Tuple{nil, true, false, int64(0), int64(255), int64(256), int64(65535), int64(65536), int64(-1),
			int64(math.MaxInt32), int64(math.MinInt32), int64(math.MaxInt32) + 1, int64(math.MinInt32) - 1,
			int64(math.MaxInt64), int64(math.MinInt64), int64(-128), int64(-129), 0.5, math.Inf(-1), math.NaN(), "", "ünï€ode"}},
		{"big int", huge},
		{"bytes", []any{[]byte{}, []byte{0, 0x80, 0xff, 'a'}}},
		{"tuples", Tuple{Tuple{}, Tuple{int64(1)}, Tuple{int64(1), int64(2)}, Tuple{int64(1), int64(2), int64(3)}, Tuple{int64(1), int64(2), int64(3), int64(4)}}},
		{"lists", []any{[]any{}, []any{"one"}, many}},
		{"dicts", &Dict{Ordered: true, Keys: []any{"a", int64(3), nil, true, 1.5}, Values: []any{&Dict{}, shared, shared, []any{shared}, "x"}}},
		{"object", &Object{Class: "argparse.Namespace", State: &Dict{Keys: []any{"lr"}, Values: []any{0.1}}}},
		{"namedtuple", &Object{Class: "__main__.Stats", Args: []any{0.5, int64(3)}}},
		{"partial", &Object{Class: "functools.partial", Args: []any{&Global{"torch.optim", "SGD"}}, State: Tuple{&Global{"torch.optim", "SGD"}, Tuple{}, &Dict{}, nil}}},
		{"globals", []any{&Global{"torch", "float16"}, &Global{"torch", "FloatStorage"}}},
		{"tensors", &Dict{Ordered: true, Keys: []any{"w", "tied", "row", "param"}, Values: []any{w, w, row, param}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, persid, err := encodeRoot(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			got, n, err := unpickle(data, persid)
			if err != nil {
				t.Fatalf("reading back: %v", err)
			}
			if n != len(data) {
				t.Errorf("read %d of %d bytes", n, len(data))
			}
			if err := sameValue(tt.v, got, "value", map[any]any{}); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestEncodeRefuses checks the values Encode cannot write faithfully.
func TestEncodeRefuses(t *testing.T) {
	deep := any(int64(1))
	for range MaxDepth + 2 {
		deep = []any{deep}
	}
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"stand-in global", &Global{Module: "numpy", Name: "dtype(f8)"}, `cannot encode global "numpy.dtype(f8)"`},
		{"class without module", &Object{Class: "Thing"}, `class "Thing"`},
		{"storage", tensor.NewStorageBytes(nil), "storage outside a tensor"},
		{"not utf-8", "a\xffb", "not UTF-8"},
		{"go type", struct{}{}, "type struct {}"},
		{"too deep", deep, "deeper than"},
		{"tensor without Tensor", tensor.New(tensor.Uint8, []int64{1}, tensor.NewStorageBytes([]byte{1})), "without Encoder.Tensor"},
		{"ragged dict", &Dict{Keys: []any{"a"}}, "1 keys and 0 values"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := (&Encoder{}).Encode(tt.v)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "pickle: ") {
				t.Errorf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestEncodeSharedContainers: lists and tuples reached twice are written
// once and fetched from the memo, as dicts and objects are, so that a graph
// of containers sharing one another (each level pairs the one below with
// itself, 2^60 leaves) is written in the size of the graph and reads back
// with the same sharing. Written in full, it never finished.
func TestEncodeSharedContainers(t *testing.T) {
	const levels = 60
	var l any = []any{int64(1)}
	var tu any = Tuple{int64(2)}
	for range levels {
		l = []any{l, l}
		tu = Tuple{tu, tu}
	}
	v := &Dict{Keys: []any{"lists", "tuples"}, Values: []any{l, tu}}
	data, persid, err := encodeRoot(v)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 40*levels {
		t.Errorf("wrote %d bytes for %d levels", len(data), levels)
	}
	got, _, err := unpickle(data, persid)
	if err != nil {
		t.Fatalf("reading back: %v", err)
	}
	d := got.(*Dict)
	for i, name := range d.Keys {
		x := d.Values[i]
		for depth := 0; depth < levels; depth++ {
			var a, b any
			switch c := x.(type) {
			case []any:
				a, b = c[0], c[1]
			case Tuple:
				a, b = c[0], c[1]
			default:
				t.Fatalf("%s at depth %d: got %T", name, depth, x)
			}
			if refKey(a) != refKey(b) {
				t.Fatalf("%s at depth %d: the two halves read back as two values", name, depth)
			}
			x = a
		}
	}
}
