package pickle

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"strings"
	"unicode/utf8"

	"github.com/ckptkit/ckpt/tensor"
)

// StorageRef names a storage as torch's persistent id does:
// ('storage', torch.<Type>Storage, Key, Location, NumElements).
type StorageRef struct {
	// Key is the storage's name in the archive (data/<Key> in a zip file).
	Key string
	// DType is the element type; it picks the storage class
	// (torch.FloatStorage for Float32, ...).
	DType tensor.DType
	// NumElements is the storage's size in elements.
	NumElements int64
	// Location is the device, "cpu" when empty.
	Location string
}

// TensorRef is how Encoder writes a tensor: a view of a storage, rebuilt
// by torch._utils._rebuild_tensor_v2(storage, Offset, Shape, Stride, False,
// OrderedDict()); when RequiresGrad is set, wrapped in
// torch._utils._rebuild_parameter(tensor, True, OrderedDict()), as torch
// pickles an nn.Parameter (the form torch.load accepts for tensors that
// require grad).
type TensorRef struct {
	Storage       StorageRef
	Offset        int64
	Shape, Stride []int64
	RequiresGrad  bool
}

// Encoder writes a value of the decoded object model (the types File.Root
// holds: nil, bool, int64, *big.Int, float64, string, []byte, Tuple, []any,
// *Dict, *Object, *Global and *tensor.Tensor; int is accepted as int64) as
// a pickle of protocol 2, the protocol torch.save uses, so that what [Load]
// decodes from the result equals the value.
//
// Python types are written as Python's own pickler writes them at protocol
// 2: a *Dict with Ordered set as collections.OrderedDict() filled by
// SETITEMS, other dicts as {}; lists by APPENDS, tuples with TUPLE1-3 or
// MARK/TUPLE; ints as BININT1, BININT2, BININT or LONG1; floats as BINFLOAT;
// strings as BINUNICODE; bytes as _codecs.encode(text, "latin1") (bytes()
// when empty); an *Object as its class, NEWOBJ with its Args (REDUCE for
// functools.partial), and BUILD with its State; a *Global as GLOBAL. A *Dict, *Object or tensor reached
// twice is written once and then fetched from the memo, so sharing is kept.
//
// What Encode refuses, with an error naming the value: a tensor when
// Tensor is nil, a *Global or *Object class that is not a dotted Python
// name (the decoder's stand-ins for values it could not represent, such as
// numpy dtypes), a storage outside a tensor, strings that are not UTF-8,
// other Go types, and nesting deeper than MaxDepth.
//
// Values Load converts on the way in come back converted: numpy scalars
// as Python numbers, numpy arrays as tensors, sets as tuples.
type Encoder struct {
	// Tensor says how to write each distinct tensor of the value (it is
	// called once per *tensor.Tensor, in pickle order).
	Tensor func(t *tensor.Tensor) (TensorRef, error)

	b    []byte
	memo map[any]uint32
	// globals memoizes GLOBAL opcodes by "module\nname".
	globals map[string]uint32
	n       uint32 // memo entries used
}

// Pickle opcodes the encoder writes (protocol 2).
const (
	opMark           = '('
	opStop           = '.'
	opNone           = 'N'
	opNewTrue        = 0x88
	opNewFalse       = 0x89
	opBinInt         = 'J'
	opBinInt1        = 'K'
	opBinInt2        = 'M'
	opLong1          = 0x8a
	opLong4          = 0x8b
	opBinFloat       = 'G'
	opBinUnicode     = 'X'
	opEmptyTuple     = ')'
	opTuple          = 't'
	opTuple1         = 0x85
	opTuple2         = 0x86
	opTuple3         = 0x87
	opEmptyList      = ']'
	opAppend         = 'a'
	opAppends        = 'e'
	opEmptyDict      = '}'
	opSetItem        = 's'
	opSetItems       = 'u'
	opGlobal         = 'c'
	opReduce         = 'R'
	opNewObj         = 0x81
	opBuild          = 'b'
	opBinPersID      = 'Q'
	opBinPut         = 'q'
	opLongBinPut     = 'r'
	opBinGet         = 'h'
	opLongBinGet     = 'j'
	opProto          = 0x80
	encoderBatchSize = 1000 // items per APPENDS / SETITEMS, as Python's pickler
)

// storageClasses maps a dtype to torch's typed storage class.
var storageClasses = map[tensor.DType]string{
	tensor.Float32: "FloatStorage", tensor.Float64: "DoubleStorage", tensor.Float16: "HalfStorage",
	tensor.BFloat16: "BFloat16Storage", tensor.Int8: "CharStorage", tensor.Int16: "ShortStorage",
	tensor.Int32: "IntStorage", tensor.Int64: "LongStorage", tensor.Uint8: "ByteStorage", tensor.Bool: "BoolStorage",
}

// reducedByCall lists the classes whose objects Python pickles by calling
// the class (REDUCE) rather than by NEWOBJ, and which Load rebuilds inertly
// from that call.
var reducedByCall = map[string]bool{"functools.partial": true}

// StorageClass returns torch's storage class name for dt ("FloatStorage"),
// or "" when torch has none.
func StorageClass(dt tensor.DType) string { return storageClasses[dt] }

// Encode returns the pickle of v: PROTO 2, the value, STOP. The Encoder
// may be used again; each call starts a fresh memo.
func (e *Encoder) Encode(v any) ([]byte, error) {
	e.b = append(make([]byte, 0, 4096), opProto, 2)
	e.memo = map[any]uint32{}
	e.globals = map[string]uint32{}
	e.n = 0
	if err := e.value(v, 0); err != nil {
		return nil, err
	}
	if int(e.n) > limit.memo {
		// The reader refuses such a pickle: say so now rather than write
		// a file that cannot be read back. Only values that may be
		// shared (dicts, objects, tensors, globals) take an entry; a
		// pickle that builds more of them without memoizing them can be
		// read but not written back.
		return nil, fmt.Errorf("pickle: cannot encode %d dicts, objects, tensors and globals: the reader's limit is %d memo entries", e.n, limit.memo)
	}
	e.b = append(e.b, opStop)
	out := e.b
	e.b, e.memo, e.globals = nil, nil, nil
	return out, nil
}

func (e *Encoder) put() uint32 {
	i := e.n
	e.n++
	if i < 256 {
		e.b = append(e.b, opBinPut, byte(i))
	} else {
		e.b = append(e.b, opLongBinPut)
		e.b = binary.LittleEndian.AppendUint32(e.b, i)
	}
	return i
}

func (e *Encoder) get(i uint32) {
	if i < 256 {
		e.b = append(e.b, opBinGet, byte(i))
	} else {
		e.b = append(e.b, opLongBinGet)
		e.b = binary.LittleEndian.AppendUint32(e.b, i)
	}
}

// fetched writes a memo fetch when key was written before.
func (e *Encoder) fetched(key any) bool {
	if i, ok := e.memo[key]; ok {
		e.get(i)
		return true
	}
	return false
}

// validName reports whether s is a dotted Python name.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, part := range strings.Split(s, ".") {
		if part == "" {
			return false
		}
		for i, r := range part {
			if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9' || r > 0x7f && utf8.ValidRune(r)) {
				return false
			}
		}
	}
	return true
}

func (e *Encoder) global(module, name string) error {
	if !validName(module) || !validName(name) {
		return fmt.Errorf("pickle: cannot encode global %q: not a Python name", module+"."+name)
	}
	key := module + "\n" + name
	if i, ok := e.globals[key]; ok {
		e.get(i)
		return nil
	}
	e.b = append(e.b, opGlobal)
	e.b = append(e.b, key...)
	e.b = append(e.b, '\n')
	e.globals[key] = e.put()
	return nil
}

func (e *Encoder) int(v int64) {
	switch {
	case v >= 0 && v < 1<<8:
		e.b = append(e.b, opBinInt1, byte(v))
	case v >= 0 && v < 1<<16:
		e.b = append(e.b, opBinInt2, byte(v), byte(v>>8))
	case v >= math.MinInt32 && v <= math.MaxInt32:
		e.b = append(e.b, opBinInt)
		e.b = binary.LittleEndian.AppendUint32(e.b, uint32(int32(v)))
	default:
		e.bigInt(big.NewInt(v))
	}
}

// bigInt writes LONG1 (or LONG4): the shortest little-endian two's
// complement bytes, as Python's encode_long.
func (e *Encoder) bigInt(x *big.Int) {
	if x.IsInt64() && x.Int64() >= math.MinInt32 && x.Int64() <= math.MaxInt32 {
		e.int(x.Int64())
		return
	}
	n := x.BitLen()/8 + 1
	v := new(big.Int).Set(x)
	if v.Sign() < 0 {
		v.Add(v, new(big.Int).Lsh(big.NewInt(1), uint(8*n)))
	}
	be := v.FillBytes(make([]byte, n))
	// Drop a redundant sign byte: 0x00 before a byte < 0x80, 0xff before one >= 0x80.
	if n > 1 && (x.Sign() >= 0 && be[0] == 0 && be[1] < 0x80 || x.Sign() < 0 && be[0] == 0xff && be[1] >= 0x80) {
		be = be[1:]
		n--
	}
	if n < 256 {
		e.b = append(e.b, opLong1, byte(n))
	} else {
		e.b = append(e.b, opLong4)
		e.b = binary.LittleEndian.AppendUint32(e.b, uint32(n))
	}
	for i := n - 1; i >= 0; i-- {
		e.b = append(e.b, be[i])
	}
}

func (e *Encoder) str(s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("pickle: cannot encode string %s: not UTF-8", brief(s))
	}
	e.b = append(e.b, opBinUnicode)
	e.b = binary.LittleEndian.AppendUint32(e.b, uint32(len(s)))
	e.b = append(e.b, s...)
	return nil
}

// items writes the values of a tuple or list, in order.
func (e *Encoder) items(vs []any, depth int) error {
	for _, it := range vs {
		if err := e.value(it, depth+1); err != nil {
			return err
		}
	}
	return nil
}

func (e *Encoder) tuple(vs []any, depth int) error {
	switch len(vs) {
	case 0:
		e.b = append(e.b, opEmptyTuple)
		return nil
	case 1, 2, 3:
		if err := e.items(vs, depth); err != nil {
			return err
		}
		e.b = append(e.b, []byte{opTuple1, opTuple2, opTuple3}[len(vs)-1])
		return nil
	}
	e.b = append(e.b, opMark)
	if err := e.items(vs, depth); err != nil {
		return err
	}
	e.b = append(e.b, opTuple)
	return nil
}

func (e *Encoder) list(vs []any, depth int) error {
	// No memo entry: a list is never fetched again (the decoded form
	// cannot say that two lists are one), and every entry counts against
	// the reader's MaxMemo.
	e.b = append(e.b, opEmptyList)
	for start := 0; start < len(vs); start += encoderBatchSize {
		batch := vs[start:min(start+encoderBatchSize, len(vs))]
		if len(batch) == 1 {
			if err := e.value(batch[0], depth+1); err != nil {
				return err
			}
			e.b = append(e.b, opAppend)
			continue
		}
		e.b = append(e.b, opMark)
		if err := e.items(batch, depth); err != nil {
			return err
		}
		e.b = append(e.b, opAppends)
	}
	return nil
}

func (e *Encoder) dict(d *Dict, depth int) error {
	if d.Ordered {
		if err := e.global("collections", "OrderedDict"); err != nil {
			return err
		}
		e.b = append(e.b, opEmptyTuple, opReduce)
	} else {
		e.b = append(e.b, opEmptyDict)
	}
	e.memo[d] = e.put()
	if len(d.Keys) != len(d.Values) {
		return fmt.Errorf("pickle: cannot encode a dict of %d keys and %d values", len(d.Keys), len(d.Values))
	}
	for start := 0; start < len(d.Keys); start += encoderBatchSize {
		end := min(start+encoderBatchSize, len(d.Keys))
		if end-start > 1 {
			e.b = append(e.b, opMark)
		}
		for i := start; i < end; i++ {
			if err := e.value(d.Keys[i], depth+1); err != nil {
				return err
			}
			if err := e.value(d.Values[i], depth+1); err != nil {
				return fmt.Errorf("%w (under key %s)", err, brief(keyString(d.Keys[i])))
			}
		}
		if end-start > 1 {
			e.b = append(e.b, opSetItems)
		} else {
			e.b = append(e.b, opSetItem)
		}
	}
	return nil
}

func (e *Encoder) object(o *Object, depth int) error {
	i := strings.LastIndexByte(o.Class, '.')
	if i < 0 {
		return fmt.Errorf("pickle: cannot encode an object of class %q: not a dotted Python name", o.Class)
	}
	if err := e.global(o.Class[:i], o.Class[i+1:]); err != nil {
		return err
	}
	if err := e.tuple(o.Args, depth); err != nil {
		return err
	}
	if reducedByCall[o.Class] {
		e.b = append(e.b, opReduce)
	} else {
		e.b = append(e.b, opNewObj)
	}
	e.memo[o] = e.put()
	if o.State != nil {
		if err := e.value(o.State, depth+1); err != nil {
			return err
		}
		e.b = append(e.b, opBuild)
	}
	return nil
}

// emptyHooks writes collections.OrderedDict(), the backward hooks torch
// passes to its rebuild functions.
func (e *Encoder) emptyHooks() error {
	if err := e.global("collections", "OrderedDict"); err != nil {
		return err
	}
	e.b = append(e.b, opEmptyTuple, opReduce)
	return nil
}

func (e *Encoder) tensor(t *tensor.Tensor) error {
	if e.Tensor == nil {
		return fmt.Errorf("pickle: cannot encode a tensor without Encoder.Tensor")
	}
	r, err := e.Tensor(t)
	if err != nil {
		return err
	}
	cls := storageClasses[r.Storage.DType]
	if cls == "" {
		return fmt.Errorf("pickle: cannot encode a tensor of dtype %s: torch has no storage type for it", r.Storage.DType)
	}
	if r.Storage.Key == "" {
		return fmt.Errorf("pickle: cannot encode a tensor whose storage has no key")
	}
	if r.RequiresGrad {
		if err := e.global("torch._utils", "_rebuild_parameter"); err != nil {
			return err
		}
	}
	if err := e.global("torch._utils", "_rebuild_tensor_v2"); err != nil {
		return err
	}
	e.b = append(e.b, opMark)
	// The persistent id ('storage', torch.<Type>Storage, key, location, numel).
	e.b = append(e.b, opMark)
	if err := e.str("storage"); err != nil {
		return err
	}
	if err := e.global("torch", cls); err != nil {
		return err
	}
	loc := r.Storage.Location
	if loc == "" {
		loc = "cpu"
	}
	if err := e.str(r.Storage.Key); err != nil {
		return err
	}
	if err := e.str(loc); err != nil {
		return err
	}
	e.int(r.Storage.NumElements)
	e.b = append(e.b, opTuple, opBinPersID)
	e.int(r.Offset)
	for _, dims := range [][]int64{r.Shape, r.Stride} {
		vs := make([]any, len(dims))
		for i, d := range dims {
			vs[i] = d
		}
		if err := e.tuple(vs, 0); err != nil {
			return err
		}
	}
	// requires_grad of the data: False inside a parameter, as torch
	// pickles Parameter.data.
	e.b = append(e.b, opNewFalse)
	if err := e.emptyHooks(); err != nil {
		return err
	}
	e.b = append(e.b, opTuple, opReduce)
	if r.RequiresGrad {
		// _rebuild_parameter(data, requires_grad, backward_hooks)
		e.b = append(e.b, opNewTrue)
		if err := e.emptyHooks(); err != nil {
			return err
		}
		e.b = append(e.b, opTuple3, opReduce)
	}
	e.memo[t] = e.put()
	return nil
}

func (e *Encoder) value(v any, depth int) error {
	if depth > MaxDepth {
		return fmt.Errorf("pickle: cannot encode an object nested deeper than %d", MaxDepth)
	}
	switch x := v.(type) {
	case nil:
		e.b = append(e.b, opNone)
	case bool:
		if x {
			e.b = append(e.b, opNewTrue)
		} else {
			e.b = append(e.b, opNewFalse)
		}
	case int:
		e.int(int64(x))
	case int64:
		e.int(x)
	case *big.Int:
		e.bigInt(x)
	case float64:
		e.b = append(e.b, opBinFloat)
		e.b = binary.BigEndian.AppendUint64(e.b, math.Float64bits(x))
	case string:
		return e.str(x)
	case []byte:
		if len(x) == 0 {
			if err := e.global("__builtin__", "bytes"); err != nil {
				return err
			}
			e.b = append(e.b, opEmptyTuple, opReduce)
			return nil
		}
		// Protocol 2 has no bytes opcode: Python writes
		// _codecs.encode(bytes.decode("latin1"), "latin1").
		if err := e.global("_codecs", "encode"); err != nil {
			return err
		}
		rs := make([]rune, len(x))
		for i, c := range x {
			rs[i] = rune(c)
		}
		if err := e.str(string(rs)); err != nil {
			return err
		}
		if err := e.str("latin1"); err != nil {
			return err
		}
		e.b = append(e.b, opTuple2, opReduce)
	case Tuple:
		return e.tuple(x, depth)
	case []any:
		return e.list(x, depth)
	case *Dict:
		if e.fetched(x) {
			return nil
		}
		return e.dict(x, depth)
	case *Object:
		if e.fetched(x) {
			return nil
		}
		return e.object(x, depth)
	case *Global:
		return e.global(x.Module, x.Name)
	case *tensor.Tensor:
		if e.fetched(x) {
			return nil
		}
		return e.tensor(x)
	case *tensor.Storage:
		return fmt.Errorf("pickle: cannot encode a storage outside a tensor")
	default:
		return fmt.Errorf("pickle: cannot encode a value of type %T", v)
	}
	return nil
}
