package pickle

import (
	"archive/zip"
	"fmt"
	"sort"
	"strings"
)

// tsClass is what a TorchScript archive's code says about one module class:
// the attributes that are parameters and buffers, in declaration order.
type tsClass struct {
	params, buffers []string
}

// scriptClasses reads the class headers of a TorchScript archive's code
// files. A file code/__torch__/a/b.py holding
//
//	class Conv2d(Module):
//	  __parameters__ = ["weight", "bias", ]
//	  __buffers__ = []
//
// declares class __torch__.a.b.Conv2d. Nothing else of the code is read;
// none of it is run.
func scriptClasses(a *zipArchive) (map[string]*tsClass, error) {
	var names []string
	byName := map[string]*zip.File{}
	for _, f := range a.files {
		name := f.Name[len(a.prefix)+1:]
		if l := lowerASCII(name); strings.HasPrefix(l, "code/") && strings.HasSuffix(l, ".py") {
			names = append(names, name)
			byName[name] = f
		}
	}
	sort.Strings(names)
	out := map[string]*tsClass{}
	var total int64
	for _, name := range names {
		total += int64(byName[name].UncompressedSize64)
		if total > MaxPickleSize {
			return nil, fmt.Errorf("pickle: torchscript code exceeds %d bytes", MaxPickleSize)
		}
		src, err := readMember(byName[name])
		if err != nil {
			return nil, err
		}
		module := strings.ReplaceAll(name[len("code/"):len(name)-len(".py")], "/", ".")
		var cur *tsClass
		for _, line := range strings.Split(string(src), "\n") {
			if rest, ok := strings.CutPrefix(line, "class "); ok {
				cur = nil
				if i := strings.IndexAny(rest, "(:"); i > 0 {
					cur = &tsClass{}
					out[module+"."+strings.TrimSpace(rest[:i])] = cur
				}
				continue
			}
			if cur == nil {
				continue
			}
			t := strings.TrimSpace(line)
			if v, ok := strings.CutPrefix(t, "__parameters__ = "); ok {
				cur.params = quotedList(v)
			} else if v, ok := strings.CutPrefix(t, "__buffers__ = "); ok {
				cur.buffers = quotedList(v)
			}
		}
	}
	return out, nil
}

// quotedList returns the double-quoted strings of a list literal such as
// ["weight", "bias", ].
func quotedList(s string) []string {
	var out []string
	for {
		i := strings.IndexByte(s, '"')
		if i < 0 {
			return out
		}
		j := strings.IndexByte(s[i+1:], '"')
		if j < 0 {
			return out
		}
		out = append(out, s[i+1:i+1+j])
		s = s[i+2+j:]
	}
}
