package formats

import (
	"strconv"
	"strings"

	"github.com/ckptkit/ckpt/pickle"
	"github.com/ckptkit/ckpt/tensor"
)

// objectKey renders a dict key as a path component, as package pickle
// names tensors and metadata: strings as they are, integers in decimal,
// True, False and None as Python prints them.
func objectKey(k any) (string, bool) {
	switch x := k.(type) {
	case string:
		return x, true
	case int64:
		return strconv.FormatInt(x, 10), true
	case bool:
		if x {
			return "True", true
		}
		return "False", true
	case nil:
		return "None", true
	}
	return "", false
}

// subObject returns the value at path inside v (dict keys and list or
// tuple indices joined by "."), or nil when path names nothing there. A
// dict key may itself hold dots: the longest key that path starts with is
// taken.
func subObject(v any, path string) any {
	for path != "" {
		var keys, vals []any
		switch x := v.(type) {
		case *pickle.Dict:
			keys, vals = x.Keys, x.Values
		case []any:
			vals = x
		case pickle.Tuple:
			vals = x
		default:
			return nil
		}
		best, bestLen := -1, -1
		for i := range vals {
			var ks string
			if keys != nil {
				var ok bool
				if ks, ok = objectKey(keys[i]); !ok {
					continue
				}
			} else {
				ks = strconv.Itoa(i)
			}
			if (path == ks || strings.HasPrefix(path, ks+".")) && len(ks) > bestLen {
				best, bestLen = i, len(ks)
			}
		}
		if best < 0 {
			return nil
		}
		v = vals[best]
		path = strings.TrimPrefix(path[bestLen:], ".")
	}
	return v
}

// replaceTensors returns a copy of v with every tensor t for which with[t]
// is set replaced by it; containers reached twice are copied once, so that
// sharing is kept. Values without a replaced tensor are shared, not copied.
func replaceTensors(v any, with map[*tensor.Tensor]*tensor.Tensor) any {
	done := map[any]any{}
	var walk func(v any, depth int) any
	walk = func(v any, depth int) any {
		if depth > pickle.MaxDepth {
			return v
		}
		switch x := v.(type) {
		case *tensor.Tensor:
			if r, ok := with[x]; ok {
				return r
			}
			return x
		case *pickle.Dict:
			if r, ok := done[x]; ok {
				return r
			}
			d := &pickle.Dict{Keys: x.Keys, Values: make([]any, len(x.Values)), Ordered: x.Ordered}
			done[x] = d
			for i, it := range x.Values {
				d.Values[i] = walk(it, depth+1)
			}
			return d
		case *pickle.Object:
			if r, ok := done[x]; ok {
				return r
			}
			o := &pickle.Object{Class: x.Class}
			done[x] = o
			if x.Args != nil {
				o.Args = walk(x.Args, depth+1).([]any)
			}
			o.State = walk(x.State, depth+1)
			return o
		case []any:
			l := make([]any, len(x))
			for i, it := range x {
				l[i] = walk(it, depth+1)
			}
			return l
		case pickle.Tuple:
			l := make(pickle.Tuple, len(x))
			for i, it := range x {
				l[i] = walk(it, depth+1)
			}
			return l
		}
		return v
	}
	return walk(v, 0)
}
