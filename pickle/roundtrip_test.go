package pickle

import (
	"bytes"
	"fmt"
	"math"
	"math/big"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/ckptkit/ckpt/tensor"
)

// encodeRoot pickles root with an Encoder whose storages are the tensors'
// own: one key per (storage, dtype), each view written as it is. It
// returns the pickle and the persistent-id resolver that reads it back.
func encodeRoot(root any) ([]byte, func(any) (any, error), error) {
	type skey struct {
		st *tensor.Storage
		dt tensor.DType
	}
	keys := map[skey]string{}
	byKey := map[string]*tensor.Storage{}
	enc := &Encoder{Tensor: func(t *tensor.Tensor) (TensorRef, error) {
		k := skey{t.Storage, t.DType}
		key, ok := keys[k]
		if !ok {
			key = strconv.Itoa(len(keys))
			keys[k] = key
			byKey[key] = t.Storage
		}
		n := t.Storage.Size() / int64(t.DType.Size())
		return TensorRef{Storage: StorageRef{Key: key, DType: t.DType, NumElements: n},
			Offset: t.Offset, Shape: t.Shape, Stride: t.Stride, RequiresGrad: t.RequiresGrad}, nil
	}}
	data, err := enc.Encode(root)
	persid := func(pid any) (any, error) {
		items, err := sequence(pid)
		if err != nil || len(items) != 5 {
			return nil, fmt.Errorf("persistent id %v", pid)
		}
		vt, ok := items[1].(*valueRef)
		st := byKey[asString(items[2])]
		if !ok || st == nil {
			return nil, fmt.Errorf("persistent id %v", pid)
		}
		return &storageRef{dtype: vt.dtype, st: st, n: -1}, nil
	}
	return data, persid, err
}

// sameValue compares a value with what the encoder's pickle of it decodes
// to: equal leaves (floats bit for bit), containers of equal items in the
// same order, tensors viewing the same storage the same way; and a pointer
// shared in a is shared the same way in b (pairs maps a's to b's).
func sameValue(a, b any, path string, pairs map[any]any) error {
	if a == nil || b == nil {
		if a != b {
			return fmt.Errorf("%s: got %T, want %T", path, b, a)
		}
		return nil
	}
	pair := func() error {
		if p, ok := pairs[a]; ok && p != b {
			return fmt.Errorf("%s: a shared value came back as two", path)
		}
		pairs[a] = b
		return nil
	}
	switch x := a.(type) {
	case float64:
		y, ok := b.(float64)
		if !ok || math.Float64bits(x) != math.Float64bits(y) {
			return fmt.Errorf("%s: got %v (%T), want %v", path, b, b, x)
		}
	case *big.Int:
		y, ok := b.(*big.Int)
		if !ok || x.Cmp(y) != 0 {
			return fmt.Errorf("%s: got %v, want %v", path, b, x)
		}
	case []byte:
		y, ok := b.([]byte)
		if !ok || !bytes.Equal(x, y) {
			return fmt.Errorf("%s: got %v, want bytes %q", path, b, x)
		}
	case *Global:
		y, ok := b.(*Global)
		if !ok || *x != *y {
			return fmt.Errorf("%s: got %v, want global %s", path, b, x)
		}
	case *tensor.Tensor:
		y, ok := b.(*tensor.Tensor)
		if !ok || x.DType != y.DType || x.Storage != y.Storage || x.Offset != y.Offset || x.RequiresGrad != y.RequiresGrad ||
			!slices.Equal(x.Shape, y.Shape) || !slices.Equal(x.Stride, y.Stride) {
			return fmt.Errorf("%s: got %+v, want tensor %+v", path, b, x)
		}
		return pair()
	case Tuple:
		y, ok := b.(Tuple)
		if !ok {
			return fmt.Errorf("%s: got %T, want a tuple", path, b)
		}
		return sameItems(x, y, path, pairs)
	case []any:
		y, ok := b.([]any)
		if !ok {
			return fmt.Errorf("%s: got %T, want a list", path, b)
		}
		return sameItems(x, y, path, pairs)
	case *Dict:
		y, ok := b.(*Dict)
		if !ok || x.Ordered != y.Ordered {
			return fmt.Errorf("%s: got %T, want a dict (ordered %v)", path, b, x.Ordered)
		}
		if _, seen := pairs[a]; seen {
			return pair()
		}
		if err := pair(); err != nil {
			return err
		}
		if err := sameItems(x.Keys, y.Keys, path+".keys", pairs); err != nil {
			return err
		}
		return sameItems(x.Values, y.Values, path, pairs)
	case *Object:
		y, ok := b.(*Object)
		if !ok || x.Class != y.Class {
			return fmt.Errorf("%s: got %v, want an object of class %s", path, b, x.Class)
		}
		if _, seen := pairs[a]; seen {
			return pair()
		}
		if err := pair(); err != nil {
			return err
		}
		if err := sameItems(x.Args, y.Args, path+".args", pairs); err != nil {
			return err
		}
		return sameValue(x.State, y.State, path+".state", pairs)
	default:
		if a != b {
			return fmt.Errorf("%s: got %v (%T), want %v (%T)", path, b, b, a, a)
		}
	}
	return nil
}

func sameItems(a, b []any, path string, pairs map[any]any) error {
	if len(a) != len(b) {
		return fmt.Errorf("%s: got %d items, want %d", path, len(b), len(a))
	}
	for i := range a {
		if err := sameValue(a[i], b[i], path+"."+strconv.Itoa(i), pairs); err != nil {
			return err
		}
	}
	return nil
}

// roundTrip encodes f's decoded object with Encoder and reads the pickle
// back: the object, its tensors' names and its metadata must survive. It
// reports false when the encoder refuses the object (a value the decoder
// could only stand in for), which only fuzzed inputs may cause.
func roundTrip(t *testing.T, f *File) bool {
	t.Helper()
	data, persid, err := encodeRoot(f.Root)
	if err != nil {
		return false
	}
	root, n, err := unpickle(data, persid)
	if err != nil {
		t.Fatalf("reading back what Encoder wrote: %v", err)
	}
	if n != len(data) {
		t.Fatalf("read back %d of the %d bytes written", n, len(data))
	}
	if err := sameValue(f.Root, root, "root", map[any]any{}); err != nil {
		t.Fatalf("read back: %v", err)
	}
	g := &File{Root: root}
	if err := g.finish(nil); err != nil {
		t.Fatalf("listing what was read back: %v", err)
	}
	if f.Format != FormatTorchScript {
		if len(g.Tensors) != len(f.Tensors) || len(g.Meta) != len(f.Meta) {
			t.Fatalf("read back %d tensors and %d metadata, wrote %d and %d", len(g.Tensors), len(g.Meta), len(f.Tensors), len(f.Meta))
		}
		for i, nt := range f.Tensors {
			if g.Tensors[i].Name != nt.Name {
				t.Fatalf("tensor %d: read back %q, wrote %q", i, g.Tensors[i].Name, nt.Name)
			}
		}
	}
	return true
}

// TestRoundTrip encodes every fixture's object with Encoder and reads it
// back.
func TestRoundTrip(t *testing.T) {
	m := readManifest(t, filepath.Join("..", "testdata", "pickle"))
	for _, e := range m.Files {
		t.Run(e.File, func(t *testing.T) {
			f := openFixture(t, e.File)
			if !roundTrip(t, f) {
				_, _, err := encodeRoot(f.Root)
				t.Fatalf("Encoder refused the object: %v", err)
			}
		})
	}
}
