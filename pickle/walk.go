package pickle

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"

	"github.com/ckptkit/ckpt/tensor"
)

// walker names the tensors and metadata of a decoded object tree.
type walker struct {
	f     *File
	nodes int
	seen  map[string]bool // class names already in f.Classes
	ts    map[string]*tsClass
	err   error
	parts []string // path components of the value being walked
}

// path returns the current path; components are joined only at leaves, so
// that walking shared containers allocates nothing.
func (w *walker) path() string { return strings.Join(w.parts, ".") }

func (w *walker) child(v any, key string, depth int) {
	w.parts = append(w.parts, key)
	w.walk(v, depth+1)
	w.parts = w.parts[:len(w.parts)-1]
}

func (w *walker) class(name string) {
	if !w.seen[name] {
		w.seen[name] = true
		w.f.Classes = append(w.f.Classes, name)
	}
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// keyString renders a dict key as a path component.
func keyString(k any) string {
	switch x := k.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case bool:
		if x {
			return "True"
		}
		return "False"
	case nil:
		return "None"
	case float64:
		// As Python's str: 1.0, 0.5, 1e+16, inf, nan.
		s := strconv.FormatFloat(x, 'g', -1, 64)
		switch {
		case math.IsInf(x, 1):
			return "inf"
		case math.IsInf(x, -1):
			return "-inf"
		case math.IsNaN(x):
			return "nan"
		case !strings.ContainsAny(s, ".e"):
			return s + ".0"
		}
		return s
	case *big.Int:
		return x.String()
	case *Global:
		return x.String()
	case Tuple:
		var b strings.Builder
		tupleKey(&b, x)
		return b.String()
	case *Object:
		return "<" + x.Class + " object>"
	}
	// Keys the converter lets through are the hashable values above; a
	// composite value is never formatted whole (a graph of shared
	// containers formats exponentially long).
	return fmt.Sprintf("<%T>", k)
}

// maxKeyString bounds the rendering of a tuple key: tuples of tuples that
// share one another render exponentially long, and a fuzzed 2 KB file
// made the listing take minutes and gigabytes.
const maxKeyString = 256

// tupleKey writes t as Python's str writes a tuple ("(1, 'a')", "(1,)"),
// cut with "..." once past maxKeyString bytes; it reports the cut, after
// which nothing more is written.
func tupleKey(b *strings.Builder, t Tuple) (cut bool) {
	return pyStr(b, t, maxKeyString)
}

// pyStr writes v as Python's str writes it - tuples, lists and dicts with
// their items' reprs, other values as keyString renders them - and cuts
// with "..." once b is past max bytes, reporting the cut (after which
// nothing more is written). The cost is bounded by max, not by the size of
// the value's expansion.
func pyStr(b *strings.Builder, v any, max int) (cut bool) {
	// item writes a container's item: strings as their repr.
	item := func(it any) bool {
		if s, ok := it.(string); ok {
			b.WriteString("'" + s + "'")
			return false
		}
		return pyStr(b, it, max)
	}
	seq := func(open, close string, items []any, oneComma bool) bool {
		b.WriteString(open)
		for i, it := range items {
			if i > 0 {
				b.WriteString(", ")
			}
			if b.Len() > max {
				b.WriteString("...")
				return true
			}
			if item(it) {
				return true
			}
		}
		if oneComma && len(items) == 1 {
			b.WriteByte(',')
		}
		b.WriteString(close)
		return false
	}
	switch x := v.(type) {
	case Tuple:
		return seq("(", ")", x, true)
	case []any:
		return seq("[", "]", x, false)
	case *Dict:
		b.WriteByte('{')
		for i, k := range x.Keys {
			if i > 0 {
				b.WriteString(", ")
			}
			if b.Len() > max {
				b.WriteString("...")
				return true
			}
			if item(k) {
				return true
			}
			b.WriteString(": ")
			if item(x.Values[i]) {
				return true
			}
		}
		b.WriteByte('}')
		return false
	}
	b.WriteString(keyString(v))
	return false
}

// visit counts one visited object and reports whether the walk may go on.
func (w *walker) visit(depth int) bool {
	if w.err != nil {
		return false
	}
	w.nodes++
	if w.nodes > limit.nodes || depth > MaxDepth {
		w.err = fmt.Errorf("pickle: object graph too large to list (more than %d visits or depth %d)", limit.nodes, MaxDepth)
		return false
	}
	return true
}

func (w *walker) walk(v any, depth int) {
	if !w.visit(depth) {
		return
	}
	switch x := v.(type) {
	case *tensor.Tensor:
		w.f.Tensors = append(w.f.Tensors, Named{Name: w.path(), Tensor: x})
	case *Dict:
		for i, k := range x.Keys {
			w.child(x.Values[i], keyString(k), depth)
		}
	case []any:
		for i, it := range x {
			w.child(it, strconv.Itoa(i), depth)
		}
	case Tuple:
		for i, it := range x {
			w.child(it, strconv.Itoa(i), depth)
		}
	case *Object:
		w.class(x.Class)
		if m := w.module(x, w.path(), depth); m != nil {
			if w.f.Modules == nil {
				w.f.Modules = m
			}
			return
		}
		// Constructor arguments (a namedtuple's fields) by index, then the
		// state (an instance __dict__) by attribute name.
		for i, a := range x.Args {
			w.child(a, strconv.Itoa(i), depth)
		}
		if x.State != nil {
			w.walk(x.State, depth+1)
		}
	case nil, bool, int64, float64, string, *big.Int, []byte:
		w.f.Meta = append(w.f.Meta, Meta{Path: w.path(), Value: x})
	case *Global:
		w.f.Meta = append(w.f.Meta, Meta{Path: w.path(), Value: x})
	}
}

// stateDict returns an Object's state as a dict of attributes.
func stateDict(o *Object) *Dict {
	switch s := o.State.(type) {
	case *Dict:
		return s
	case Tuple:
		// (state, slotstate) as BUILD accepts it.
		if len(s) == 2 {
			if d, ok := s[0].(*Dict); ok {
				return d
			}
		}
	}
	return nil
}

// module lists a torch.nn.Module object (its _parameters, _buffers and
// _modules) or a TorchScript module object, naming its tensors by their
// state_dict keys, and returns its tree; it returns nil if o is not a module.
func (w *walker) module(o *Object, path string, depth int) *Module {
	if !w.visit(depth) {
		return nil
	}
	st := stateDict(o)
	if st == nil {
		return nil
	}
	if tc := w.ts[o.Class]; tc != nil {
		return w.scriptModule(o, st, tc, path, depth)
	}
	params, ok1 := st.Get("_parameters")
	mods, ok2 := st.Get("_modules")
	pd, ok3 := params.(*Dict)
	md, ok4 := mods.(*Dict)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return nil
	}
	m := &Module{Name: path, Class: o.Class}
	for i, k := range pd.Keys {
		if t, ok := pd.Values[i].(*tensor.Tensor); ok {
			name := keyString(k)
			m.Params = append(m.Params, name)
			w.f.Tensors = append(w.f.Tensors, Named{Name: join(path, name), Tensor: t})
		}
	}
	if b, ok := st.Get("_buffers"); ok {
		if bd, ok := b.(*Dict); ok {
			skip := map[string]bool{}
			if np, ok := st.Get("_non_persistent_buffers_set"); ok {
				if items, ok := np.(Tuple); ok {
					for _, it := range items {
						skip[keyString(it)] = true
					}
				}
			}
			for i, k := range bd.Keys {
				name := keyString(k)
				if t, ok := bd.Values[i].(*tensor.Tensor); ok && !skip[name] {
					m.Buffers = append(m.Buffers, name)
					w.f.Tensors = append(w.f.Tensors, Named{Name: join(path, name), Tensor: t})
				}
			}
		}
	}
	for i, k := range md.Keys {
		child, ok := md.Values[i].(*Object)
		if !ok {
			continue
		}
		w.class(child.Class)
		name := keyString(k)
		if cm := w.module(child, join(path, name), depth+1); cm != nil {
			cm.Name = name
			m.Children = append(m.Children, cm)
		}
	}
	return m
}

// scriptModule lists a TorchScript module object, whose parameters and
// buffers are attributes named by its class's __parameters__ and
// __buffers__ lists (from the archive's code/ files).
func (w *walker) scriptModule(o *Object, st *Dict, tc *tsClass, path string, depth int) *Module {
	m := &Module{Name: path, Class: o.Class}
	if !w.visit(depth) {
		return m
	}
	for _, group := range []struct {
		names []string
		dst   *[]string
	}{{tc.params, &m.Params}, {tc.buffers, &m.Buffers}} {
		for _, name := range group.names {
			v, _ := st.Get(name)
			if t, ok := v.(*tensor.Tensor); ok {
				*group.dst = append(*group.dst, name)
				w.f.Tensors = append(w.f.Tensors, Named{Name: join(path, name), Tensor: t})
			}
		}
	}
	for i, k := range st.Keys {
		child, ok := st.Values[i].(*Object)
		if !ok {
			continue
		}
		w.class(child.Class)
		name := keyString(k)
		if cst := stateDict(child); cst != nil && w.ts[child.Class] != nil {
			cm := w.scriptModule(child, cst, w.ts[child.Class], join(path, name), depth+1)
			cm.Name = name
			m.Children = append(m.Children, cm)
		}
	}
	return m
}
