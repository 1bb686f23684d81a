package pickle

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"
	"reflect"
	"strings"

	gp "github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"

	"github.com/ckptkit/ckpt/tensor"
)

// Values of the decoded object tree (File.Root and Meta values) are:
// nil, bool, int64, *big.Int (only beyond int64), float64, string, []byte, Tuple, []any (a
// list), *Dict, *Object, *Global and *tensor.Tensor.

// Dict is a Python dict or OrderedDict with its insertion order kept.
type Dict struct {
	Keys   []any
	Values []any
	// Ordered is set for a collections.OrderedDict (a state_dict), so that
	// Encoder writes one back.
	Ordered bool
}

// Get returns the value stored under key and whether it was found. Keys
// are compared with Go's ==, so 1 (int64) and 1.0 (float64) differ; a key
// of an incomparable type (a Tuple) is never found.
func (d *Dict) Get(key any) (any, bool) {
	if key != nil && !reflect.TypeOf(key).Comparable() {
		return nil, false
	}
	for i, k := range d.Keys {
		if k == key {
			return d.Values[i], true
		}
	}
	return nil, false
}

// Len returns the number of entries.
func (d *Dict) Len() int { return len(d.Keys) }

// Tuple is a Python tuple (a Python list decodes to []any).
type Tuple []any

// Object is an instance of a class outside the allow-list, rebuilt inertly:
// its class is recorded by name and its state (what BUILD would have given
// __setstate__, usually the instance __dict__) is kept as data. No code of
// the class runs.
type Object struct {
	Class string // "module.Name"
	Args  []any  // arguments NEWOBJ passed to __new__
	State any    // the BUILD state, nil when there was none
}

// Global is a class or function named by the pickle and used as a value,
// such as torch.float16 or a storage class.
type Global struct {
	Module, Name string
}

// String returns "module.name".
func (g *Global) String() string { return g.Module + "." + g.Name }

// classRef is an inert class during unpickling.
type classRef struct{ module, name string }

func (c *classRef) PyNew(args ...any) (any, error) {
	return &objectRaw{class: c, args: args}, nil
}

// objectRaw is an inert instance during unpickling.
type objectRaw struct {
	class *classRef
	args  []any
	state any
}

func (o *objectRaw) PySetState(state any) error {
	o.state = state
	return nil
}

// valueRef is a global usable only as a value during unpickling.
type valueRef struct {
	module, name string
	dtype        tensor.DType // for storage classes
}

// callFunc is an allow-listed callable.
type callFunc struct {
	name string
	fn   func(args []any) (any, error)
}

func (c *callFunc) Call(args ...any) (any, error) {
	v, err := c.fn(args)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.name, err)
	}
	return v, nil
}

// storageRef is what a persistent id resolves to: a typed storage, possibly
// a view (legacy format) of elements [off, off+n) of a root storage.
type storageRef struct {
	dtype  tensor.DType
	st     *tensor.Storage
	off, n int64 // element range of a view; n < 0 for the whole storage
}

// odAlias replaces the name OrderedDict in GLOBAL opcodes, with the same
// length so that offsets do not move; findClass maps it to orderedDict.
const odAlias = "OrderedDic\x01"

// orderedDict implements collections.OrderedDict() and the Python 2 form
// OrderedDict([[key, value], ...]).
func orderedDict(args []any) (any, error) {
	d := types.NewOrderedDict()
	if len(args) == 0 {
		return d, nil
	}
	if len(args) > 1 {
		return nil, fmt.Errorf("want at most 1 argument, got %d", len(args))
	}
	if src, ok := args[0].(*types.Dict); ok {
		for _, e := range *src {
			d.Set(hashable(e.Key), e.Value)
		}
		return d, nil
	}
	pairs, err := sequence(args[0])
	if err != nil {
		return nil, err
	}
	for _, p := range pairs {
		kv, err := sequence(p)
		if err != nil || len(kv) != 2 {
			return nil, errors.New("items are not key-value pairs")
		}
		d.Set(hashable(kv[0]), kv[1])
	}
	return d, nil
}

// counter implements collections.Counter() and Counter({key: count}): a
// Counter pickles as a plain dict of counts, which is what it becomes.
func counter(args []any) (any, error) {
	switch {
	case len(args) == 0:
		return types.NewDict(), nil
	case len(args) > 1:
		return nil, fmt.Errorf("want at most 1 argument, got %d", len(args))
	}
	if d, ok := args[0].(*types.Dict); ok {
		return d, nil
	}
	return nil, fmt.Errorf("argument is %T, want a dict of counts", args[0])
}

// findClass resolves a global for the VM. The validating pass has already
// refused forbidden globals; this is the second line of defence.
func findClass(module, name string) (any, error) {
	if module == "collections" && name == odAlias {
		return &callFunc{name: "collections.OrderedDict", fn: orderedDict}, nil
	}
	full := module + "." + name
	switch classify(module, name) {
	case catForbidden:
		return nil, &ForbiddenError{Global: full}
	case catCall:
		if f, ok := callImpls[full]; ok {
			return &callFunc{name: full, fn: f}, nil
		}
		return nil, &ForbiddenError{Global: full}
	case catValue:
		v := &valueRef{module: module, name: name}
		if s, ok := storageDTypes[name]; ok {
			v.dtype, _ = tensor.ParseDType(s)
		}
		return v, nil
	}
	return &classRef{module: module, name: name}, nil
}

var callImpls map[string]func([]any) (any, error)

func init() {
	tupleArg := func(args []any) (any, error) {
		if len(args) != 1 {
			return nil, fmt.Errorf("want 1 argument, got %d", len(args))
		}
		return hashable(args[0]), nil
	}
	setOf := func(args []any) (any, error) {
		if len(args) == 0 {
			return types.NewTupleFromSlice(nil), nil
		}
		items, err := sequence(args[0])
		if err != nil {
			return nil, err
		}
		return types.NewTupleFromSlice(items), nil
	}
	callImpls = map[string]func([]any) (any, error){
		"torch._utils._rebuild_tensor":               rebuildTensor,
		"torch._utils._rebuild_tensor_v2":            rebuildTensor,
		"torch._utils._rebuild_parameter":            rebuildParameter,
		"torch._utils._rebuild_parameter_with_state": rebuildParameter,
		"torch._tensor._rebuild_from_type_v2":        rebuildFromType,
		"torch.nn.parameter.Parameter":               rebuildParameter,
		"torch.Size":                                 tupleArg,
		"collections.Counter":                        counter,
		"torch.device": func(args []any) (any, error) {
			if len(args) == 0 {
				return nil, errors.New("no arguments")
			}
			if s, ok := args[0].(string); ok {
				if len(args) > 1 {
					// torch.device(type, index) takes an integer index
					// (formatting any other value could take forever).
					i, err := toInt(args[1])
					if err != nil {
						return nil, errors.New("device index is not an integer")
					}
					return fmt.Sprintf("%s:%d", s, i), nil
				}
				return s, nil
			}
			return nil, errors.New("device type is not a string")
		},
		"torch.jit._pickle.build_intlist":    tupleArg,
		"torch.jit._pickle.build_floatlist":  tupleArg,
		"torch.jit._pickle.build_doublelist": tupleArg,
		"torch.jit._pickle.build_boollist":   tupleArg,
		"torch.jit._pickle.build_tensorlist": tupleArg,
		"torch.jit._pickle.restore_type_tag": func(args []any) (any, error) {
			if len(args) != 2 {
				return nil, fmt.Errorf("want 2 arguments, got %d", len(args))
			}
			return hashable(args[0]), nil
		},
		"copyreg._reconstructor": func(args []any) (any, error) {
			if len(args) != 3 {
				return nil, fmt.Errorf("want 3 arguments, got %d", len(args))
			}
			c, ok := args[0].(*classRef)
			if !ok {
				return nil, errors.New("first argument is not a class")
			}
			o := &objectRaw{class: c}
			if args[2] != nil {
				o.args = []any{args[2]}
			}
			return o, nil
		},
		"functools.partial": func(args []any) (any, error) {
			// An inert record of the partial; nothing is ever called.
			return &objectRaw{class: &classRef{module: "functools", name: "partial"}, args: args}, nil
		},
		"numpy.dtype":                         numpyDType,
		"numpy.core.multiarray.scalar":        numpyScalar,
		"numpy._core.multiarray.scalar":       numpyScalar,
		"numpy.core.multiarray._reconstruct":  numpyReconstruct,
		"numpy._core.multiarray._reconstruct": numpyReconstruct,
		"numpy.core.numeric._frombuffer":      numpyFromBuffer,
		"numpy._core.numeric._frombuffer":     numpyFromBuffer,
		"builtins.set":                        setOf,
		"builtins.frozenset":                  setOf,
		"__builtin__.set":                     setOf,
		"__builtin__.frozenset":               setOf,
		"_codecs.encode": func(args []any) (any, error) {
			if len(args) < 1 {
				return nil, errors.New("no arguments")
			}
			return latin1(args[0])
		},
	}
	// bytes() and bytearray(str, "latin-1"): protocol 2 pickles empty bytes
	// as bytes() and bytearrays as the second form. The two stay apart:
	// CPython hashes bytes but not bytearrays.
	for _, name := range []string{"builtins.bytes", "__builtin__.bytes"} {
		callImpls[name] = func(args []any) (any, error) {
			if len(args) == 0 {
				return &pyBytes{}, nil
			}
			return latin1(args[0])
		}
	}
	for _, name := range []string{"builtins.bytearray", "__builtin__.bytearray"} {
		callImpls[name] = func(args []any) (any, error) {
			if len(args) == 0 {
				return types.NewByteArrayFromSlice(nil), nil
			}
			b, err := latin1(args[0])
			if err != nil {
				return nil, err
			}
			return types.NewByteArrayFromSlice(*b), nil
		}
	}
	callImpls["copy_reg._reconstructor"] = callImpls["copyreg._reconstructor"]
}

// pyBytes is a Python bytes value the VM makes itself (bytes(),
// _codecs.encode, bytes a call returns), boxed so that it can be a member of
// gopickle's sets (Go map keys) and kept apart from *types.ByteArray, which
// is a bytearray: CPython hashes bytes, not bytearrays.
type pyBytes []byte

// latin1 encodes a string as Latin-1, the only encoding numpy and
// bytearray pickles use.
func latin1(v any) (*pyBytes, error) {
	s, ok := v.(string)
	if !ok {
		return nil, fmt.Errorf("got %T, want a string", v)
	}
	b := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xff {
			return nil, errors.New("string is not latin-1")
		}
		b = append(b, byte(r))
	}
	pb := pyBytes(b)
	return &pb, nil
}

// hashable boxes bytes, the one value gopickle makes that Go cannot use as a
// map key, so that a value returned by a call can be a dict key or set
// member.
func hashable(v any) any {
	if b, ok := v.([]byte); ok {
		pb := pyBytes(b)
		return &pb
	}
	return v
}

// sequence returns the items of a tuple or list.
func sequence(v any) ([]any, error) {
	switch s := v.(type) {
	case *types.Tuple:
		return *s, nil
	case *types.List:
		return *s, nil
	}
	return nil, fmt.Errorf("got %T, want a tuple or list", v)
}

// toInt converts a pickled integer.
func toInt(v any) (int64, error) {
	switch n := v.(type) {
	case int:
		return int64(n), nil
	case int64:
		return n, nil
	case bool:
		if n {
			return 1, nil
		}
		return 0, nil
	case *big.Int:
		if n.IsInt64() {
			return n.Int64(), nil
		}
	}
	return 0, fmt.Errorf("got %T, want an integer", v)
}

func intsOf(v any) ([]int64, error) {
	items, err := sequence(v)
	if err != nil {
		return nil, err
	}
	if len(items) > 64 {
		return nil, fmt.Errorf("%d dimensions, at most 64", len(items))
	}
	out := make([]int64, len(items))
	for i, it := range items {
		if out[i], err = toInt(it); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// rebuildTensor implements _rebuild_tensor(storage, offset, size, stride)
// and _rebuild_tensor_v2(..., requires_grad, backward_hooks[, metadata]).
func rebuildTensor(args []any) (any, error) {
	if len(args) < 4 || len(args) > 7 {
		return nil, fmt.Errorf("want 4 to 7 arguments, got %d", len(args))
	}
	sr, ok := args[0].(*storageRef)
	if !ok {
		return nil, fmt.Errorf("got %T, want a storage", args[0])
	}
	off, err := toInt(args[1])
	if err != nil {
		return nil, fmt.Errorf("storage offset: %w", err)
	}
	shape, err := intsOf(args[2])
	if err != nil {
		return nil, fmt.Errorf("size: %w", err)
	}
	stride, err := intsOf(args[3])
	if err != nil {
		return nil, fmt.Errorf("stride: %w", err)
	}
	t := &tensor.Tensor{DType: sr.dtype, Shape: shape, Stride: stride, Offset: off, Storage: sr.st}
	if len(args) >= 5 {
		if b, ok := args[4].(bool); ok {
			t.RequiresGrad = b
		}
	}
	if sr.n >= 0 {
		// A legacy storage view: check the tensor against the view, then
		// address the root storage so that views of one root stay shared.
		view := &tensor.Tensor{DType: t.DType, Shape: shape, Stride: stride, Offset: off,
			Storage: tensor.NewStorage(bytes.NewReader(nil), 0, sr.n*int64(sr.dtype.Size()))}
		if err := view.Validate(); err != nil {
			return nil, err
		}
		t.Offset += sr.off
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return t, nil
}

// rebuildParameter implements _rebuild_parameter(data, requires_grad,
// backward_hooks[, state]) and the legacy Parameter(data, requires_grad).
func rebuildParameter(args []any) (any, error) {
	if len(args) < 1 {
		return nil, errors.New("no arguments")
	}
	t, ok := args[0].(*tensor.Tensor)
	if !ok {
		return nil, fmt.Errorf("got %T, want a tensor", args[0])
	}
	p := *t
	p.RequiresGrad = true
	if len(args) >= 2 {
		if b, ok := args[1].(bool); ok {
			p.RequiresGrad = b
		}
	}
	return &p, nil
}

// rebuildFromType implements _rebuild_from_type_v2(func, type, args, state)
// for tensor subclasses: the tensor is rebuilt, the subclass is dropped.
func rebuildFromType(args []any) (any, error) {
	if len(args) != 4 {
		return nil, fmt.Errorf("want 4 arguments, got %d", len(args))
	}
	f, ok := args[0].(*callFunc)
	if !ok || f.name == "torch._tensor._rebuild_from_type_v2" {
		return nil, fmt.Errorf("got %T, want a rebuild function", args[0])
	}
	inner, err := sequence(args[2])
	if err != nil {
		return nil, err
	}
	return f.Call(inner...)
}

// unpickle validates and decodes the pickle at the start of data and
// returns its root object in the decoded form and the pickle's length.
// persid resolves persistent ids; nil means the pickle may have none.
func unpickle(data []byte, persid func(any) (any, error)) (root any, n int, err error) {
	n, code, err := verify(data, persid != nil)
	if err != nil {
		return nil, 0, err
	}
	defer func() {
		if r := recover(); r != nil {
			root, err = nil, fmt.Errorf("pickle: malformed pickle (%s)", oneLine(fmt.Sprint(r)))
		}
	}()
	u := gp.NewUnpickler(bytes.NewReader(code))
	u.FindClass = findClass
	if persid != nil {
		u.PersistentLoad = persid
	}
	raw, err := u.Load()
	if err != nil {
		var fe *ForbiddenError
		if errors.As(err, &fe) {
			return nil, 0, fe
		}
		// gopickle's messages may quote whole objects: keep one short line.
		// Errors of ours that it passes on (from persid) are prefixed already.
		msg := oneLine(err.Error())
		if !strings.HasPrefix(msg, "pickle: ") {
			msg = "pickle: " + msg
		}
		return nil, 0, errors.New(msg)
	}
	c := converter{done: make(map[any]any), busy: make(map[any]bool)}
	root, err = c.convert(raw, 0)
	if err != nil {
		return nil, 0, err
	}
	return root, n, nil
}

// converter turns gopickle's values into the decoded form, keeping shared
// objects shared and refusing cycles and excessive depth.
type converter struct {
	done   map[any]any
	busy   map[any]bool
	nodes  int
	hashed map[*types.Tuple]bool // tuple keys found hashable (see unhashable)
}

func (c *converter) convert(v any, depth int) (any, error) {
	if depth > MaxDepth {
		return nil, fmt.Errorf("pickle: object nesting deeper than %d", MaxDepth)
	}
	c.nodes++
	if c.nodes > limit.nodes {
		return nil, fmt.Errorf("pickle: more than %d objects", limit.nodes)
	}
	switch x := v.(type) {
	case nil, bool, string, float64, *tensor.Tensor:
		return x, nil
	case *big.Int:
		// Python has one int type: a LONG1 of ten bytes whose value fits
		// int64 is the same number as a BININT8-sized one, so it reads as
		// int64 like every other small integer (found by FuzzLoad: the
		// Encoder writes such a value back in eight bytes).
		if x.IsInt64() {
			return x.Int64(), nil
		}
		return x, nil
	case int:
		return int64(x), nil
	case []byte:
		return x, nil
	case *types.ByteArray:
		return []byte(*x), nil
	case *pyBytes:
		return []byte(*x), nil
	case *classRef:
		return &Global{Module: x.module, Name: x.name}, nil
	case *valueRef:
		return &Global{Module: x.module, Name: x.name}, nil
	case *callFunc:
		i := strings.LastIndexByte(x.name, '.')
		return &Global{Module: x.name[:i], Name: x.name[i+1:]}, nil
	case *storageRef:
		return x.st, nil
	case *npDType:
		return &Global{Module: "numpy", Name: "dtype(" + x.code + ")"}, nil
	case *npArray:
		if x.t == nil {
			return nil, errors.New("pickle: numpy array without data")
		}
		return x.t, nil
	}
	// Containers: shared and cyclic references, tracked by pointer.
	if !reflect.TypeOf(v).Comparable() {
		return &Global{Module: fmt.Sprintf("%T", v)}, nil
	}
	if out, ok := c.done[v]; ok {
		return out, nil
	}
	if c.busy[v] {
		return nil, errors.New("pickle: object contains itself")
	}
	c.busy[v] = true
	defer delete(c.busy, v)
	var out any
	var err error
	switch x := v.(type) {
	case *types.Tuple:
		var l []any
		l, err = c.list(make([]any, len(*x)), *x, depth)
		out = Tuple(l)
	case *types.List:
		var l []any
		l, err = c.list(make([]any, len(*x)), *x, depth)
		out = l
	case *types.Set:
		out, err = c.set(keysOf(*x), depth)
	case *types.FrozenSet:
		out, err = c.set(keysOf(*x), depth)
	case *types.Dict:
		d := &Dict{}
		var idx map[any]int
		if len(*x) > 1 {
			idx = make(map[any]int, len(*x))
		}
		for _, e := range *x {
			if err = c.setItem(d, idx, e.Key, e.Value, depth); err != nil {
				break
			}
		}
		out = d
	case *types.OrderedDict:
		d := &Dict{Ordered: true}
		var idx map[any]int
		if x.List.Len() > 1 {
			idx = make(map[any]int, x.List.Len())
		}
		for e := x.List.Front(); e != nil; e = e.Next() {
			en := e.Value.(*types.OrderedDictEntry)
			if err = c.setItem(d, idx, en.Key, en.Value, depth); err != nil {
				break
			}
		}
		out = d
	case *objectRaw:
		o := &Object{Class: x.class.module + "." + x.class.name}
		c.done[v] = o
		if len(x.args) > 0 {
			if o.Args, err = c.list(make([]any, len(x.args)), x.args, depth); err != nil {
				return nil, err
			}
		}
		if o.State, err = c.convert(x.state, depth+1); err != nil {
			return nil, err
		}
		return o, nil
	default:
		// Other gopickle values (classes it resolves itself) are inert.
		out = &Global{Module: fmt.Sprintf("%T", v)}
	}
	if err != nil {
		return nil, err
	}
	c.done[v] = out
	return out, nil
}

// unhashable returns the Python type of k when CPython could not hash it
// (a list, dict, set or bytearray, or a tuple holding one), or "". Each
// tuple is looked into once (seen), so tuples that share one another
// cost their number, not the size of their expansion.
func unhashable(k any, seen map[*types.Tuple]bool, depth int) string {
	switch x := k.(type) {
	case *types.List:
		return "list"
	case *types.Dict, *types.OrderedDict:
		return "dict"
	case *types.Set:
		return "set"
	case *types.ByteArray:
		return "bytearray"
	case *types.Tuple:
		if seen[x] || depth > MaxDepth {
			return "" // too deep: the conversion refuses it
		}
		seen[x] = true
		for _, it := range *x {
			if t := unhashable(it, seen, depth+1); t != "" {
				return "tuple holding a " + t
			}
		}
	}
	return ""
}

// keysOf returns the members of a gopickle set or frozenset.
func keysOf[M ~map[any]V, V any](m M) []any {
	items := make([]any, 0, len(m))
	for k := range m {
		items = append(items, k)
	}
	return items
}

// set converts the members of a set or frozenset to a Tuple. CPython hashes
// every member as it builds the set, so a member it could not hash (a list,
// or a tuple holding one) fails pickle.load, and ckpt refuses it too.
func (c *converter) set(items []any, depth int) (Tuple, error) {
	if c.hashed == nil {
		c.hashed = map[*types.Tuple]bool{}
	}
	for _, it := range items {
		if t := unhashable(it, c.hashed, depth); t != "" {
			return nil, fmt.Errorf("pickle: set member is an unhashable %s (pickle.load refuses it)", t)
		}
	}
	l, err := c.list(make([]any, len(items)), items, depth)
	return Tuple(l), err
}

func (c *converter) list(dst, src []any, depth int) ([]any, error) {
	for i, it := range src {
		v, err := c.convert(it, depth+1)
		if err != nil {
			return nil, err
		}
		dst[i] = v
	}
	return dst, nil
}

func (c *converter) setItem(d *Dict, idx map[any]int, k, v any, depth int) error {
	if c.hashed == nil {
		c.hashed = map[*types.Tuple]bool{}
	}
	if t := unhashable(k, c.hashed, depth); t != "" {
		// CPython's SETITEM hashes the key first: pickle.load fails.
		return fmt.Errorf("pickle: dict key is an unhashable %s (pickle.load refuses it)", t)
	}
	ck, err := c.convert(k, depth+1)
	if err != nil {
		return err
	}
	cv, err := c.convert(v, depth+1)
	if err != nil {
		return err
	}
	var key any
	switch ck.(type) {
	case nil, bool, int64, float64, string, *Global, *Object, *tensor.Tensor:
		key = ck
	}
	if idx != nil && (key != nil || ck == nil) {
		if i, ok := idx[key]; ok {
			d.Values[i] = cv
			return nil
		}
		idx[key] = len(d.Keys)
	}
	d.Keys = append(d.Keys, ck)
	d.Values = append(d.Values, cv)
	return nil
}
