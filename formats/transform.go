package formats

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/ckptkit/ckpt/pickle"
	"github.com/ckptkit/ckpt/tensor"
)

// Options are ckpt convert's changes to a checkpoint, applied by Transform
// in the order of the fields.
type Options struct {
	// Exclude leaves out every tensor (and skipped tensor, see
	// Checkpoint.Skipped) whose name in the source matches one of the
	// patterns.
	Exclude []*regexp.Regexp
	// Key takes one sub-tree as the checkpoint: tensors named "Key.x"
	// become "x"; other tensors are dropped. Metadata inside the sub-tree
	// is renamed the same way; metadata outside it is kept as it is (it
	// describes the checkpoint: epoch, arch).
	Key string
	// StripPrefix removes this prefix from every tensor name that has it
	// ("module." for DataParallel checkpoints). A prefix without a final
	// "." that ends at a "." in the name takes that "." too: "module"
	// turns "module.conv1.weight" into "conv1.weight", as "module." does.
	StripPrefix string
	// Rename rewrites tensor names, each rule in turn.
	Rename []Rename
	// DType, when valid, casts every floating-point tensor of another
	// floating dtype to it (Float16, BFloat16 or Float32); other tensors
	// are untouched. Names viewing the same elements (tied weights) share
	// one cast tensor; other storage sharing is not kept by a cast.
	DType tensor.DType
}

// Rename is a --rename rule: every match of Pattern in a tensor name is
// replaced by Replacement, which may refer to groups as $1 or ${name}
// (regexp.Regexp.ReplaceAllString). Anchor the pattern (^module\.) to
// replace only a prefix.
type Rename struct {
	Pattern     *regexp.Regexp
	Replacement string
}

// ParseRename parses "REGEX=REPLACEMENT", split at the first '='.
func ParseRename(s string) (Rename, error) {
	pat, repl, ok := strings.Cut(s, "=")
	if !ok || pat == "" {
		return Rename{}, fmt.Errorf("formats: rename %q: want REGEX=REPLACEMENT", s)
	}
	re, err := regexp.Compile(pat)
	if err != nil {
		return Rename{}, fmt.Errorf("formats: rename %q: %w", s, err)
	}
	return Rename{re, repl}, nil
}

// Report says what Transform did. Cast counts are complete only once every
// cast tensor has been read through once (after Save): casting happens as
// the bytes stream.
type Report struct {
	// Excluded counts the tensors and skipped tensors left out by Exclude.
	Excluded int
	// Dropped counts the tensors left out by Key.
	Dropped int
	// Stripped counts the tensors StripPrefix applied to.
	Stripped int
	// Renamed counts the tensors whose name changed.
	Renamed int
	// Cast is the cast, counting values as they stream.
	Cast *CastStats
}

// Transform returns a checkpoint with opts applied to c. Tensors that are
// not cast share their bytes with c, so c must stay open while the result
// is used; closing the result closes nothing. It fails when Key matches no
// tensor, when opts.DType is not a valid target, or when renaming makes two
// names equal.
func Transform(c *Checkpoint, opts Options) (*Checkpoint, *Report, error) {
	out := &Checkpoint{Format: c.Format, Pickle: c.Pickle, ONNX: c.ONNX}
	rep := &Report{}
	excluded := func(name string) bool {
		for _, re := range opts.Exclude {
			if re.MatchString(name) {
				rep.Excluded++
				return true
			}
		}
		return false
	}
	type entry struct {
		orig, name string
		t          *tensor.Tensor
	}
	var es []entry
	for _, nt := range c.Tensors {
		if excluded(nt.Name) {
			continue
		}
		name := nt.Name
		if opts.Key != "" {
			rest, ok := strings.CutPrefix(name, opts.Key+".")
			if !ok {
				rep.Dropped++
				continue
			}
			name = rest
		}
		es = append(es, entry{nt.Name, name, nt.Tensor})
	}
	// Skipped tensors keep their source names: they are only ever named
	// in messages, where the user needs the name the file has.
	for _, s := range c.Skipped {
		if excluded(s.Name) || (opts.Key != "" && !strings.HasPrefix(s.Name, opts.Key+".")) {
			continue
		}
		out.Skipped = append(out.Skipped, s)
	}
	if opts.Key != "" && len(es) == 0 {
		return nil, nil, fmt.Errorf("formats: key %q matches no tensor (top-level keys: %s)", opts.Key, strings.Join(topLevel(c), ", "))
	}
	for i := range es {
		n := es[i].name
		if p := opts.StripPrefix; p != "" {
			if rest, ok := strings.CutPrefix(n, p); ok {
				if !strings.HasSuffix(p, ".") {
					rest = strings.TrimPrefix(rest, ".")
				}
				n = rest
				rep.Stripped++
			}
		}
		for _, r := range opts.Rename {
			n = r.Pattern.ReplaceAllString(n, r.Replacement)
		}
		es[i].name = n
		if n != es[i].orig && (opts.Key == "" || n != strings.TrimPrefix(es[i].orig, opts.Key+".")) {
			rep.Renamed++
		}
	}
	seen := map[string]string{}
	for _, e := range es {
		if prev, dup := seen[e.name]; dup {
			return nil, nil, fmt.Errorf("formats: tensors %q and %q would both be named %q", prev, e.orig, e.name)
		}
		if e.name == "" {
			return nil, nil, fmt.Errorf("formats: tensor %q would have an empty name", e.orig)
		}
		seen[e.name] = e.orig
	}
	if opts.DType != tensor.Invalid {
		switch opts.DType {
		case tensor.Float16, tensor.BFloat16, tensor.Float32:
		default:
			return nil, nil, fmt.Errorf("formats: cannot cast to %s: want float16, bfloat16 or float32", opts.DType)
		}
		rep.Cast = &CastStats{To: opts.DType}
	}
	// Tied tensors (the same view under two names) are cast once, so they
	// still share a storage in the output.
	type viewKey struct {
		st     *tensor.Storage
		dt     tensor.DType
		off    int64
		shape  string
		stride string
	}
	casts := map[viewKey]*tensor.Tensor{}
	for _, e := range es {
		t := e.t
		if rep.Cast != nil && t.DType.IsFloat() && t.DType != opts.DType {
			k := viewKey{t.Storage, t.DType, t.Offset, fmt.Sprint(t.Shape), fmt.Sprint(t.Stride)}
			ct, ok := casts[k]
			if !ok {
				var err error
				if ct, err = Cast(t, opts.DType, rep.Cast); err != nil {
					return nil, nil, fmt.Errorf("formats: tensor %q: %w", e.orig, err)
				}
				casts[k] = ct
			}
			t = ct
		}
		out.Tensors = append(out.Tensors, Named{Name: e.name, Tensor: t})
	}
	for _, m := range c.Meta {
		if opts.Key != "" {
			if rest, ok := strings.CutPrefix(m.Key, opts.Key+"."); ok {
				m.Key = rest
			}
		}
		out.Meta = append(out.Meta, m)
	}
	// Keys renamed out of the sub-tree may now collide with outer ones.
	metaSeen := map[string]bool{}
	out.Meta = slices.DeleteFunc(out.Meta, func(m Meta) bool {
		dup := metaSeen[m.Key]
		metaSeen[m.Key] = true
		return dup
	})
	if d, ok := c.Object.(*pickle.Dict); ok && opts.Key == "" && tensorDict(d) {
		// A state_dict stays one, of the same dict type, under the new names.
		nd := &pickle.Dict{Ordered: d.Ordered}
		for _, nt := range out.Tensors {
			nd.Keys, nd.Values = append(nd.Keys, nt.Name), append(nd.Values, nt.Tensor)
		}
		out.Object = nd
		out.outside = c.outside
	} else if c.Object != nil && rep.Excluded == 0 && rep.Stripped == 0 && rep.Renamed == 0 {
		// No tensor left out or renamed: the saved object keeps its
		// structure, with the cast tensors in place of the originals.
		obj := c.Object
		if opts.Key != "" {
			obj = subObject(obj, opts.Key)
		}
		with := map[*tensor.Tensor]*tensor.Tensor{}
		for i, e := range es {
			if out.Tensors[i].Tensor != e.t {
				with[e.t] = out.Tensors[i].Tensor
			}
		}
		if obj != nil && len(with) > 0 {
			obj = replaceTensors(obj, with)
		}
		out.Object = obj
		out.outside = c.outside
		if obj != nil && opts.Key != "" {
			for _, m := range c.Meta {
				if !strings.HasPrefix(m.Key, opts.Key+".") {
					out.outside = append(out.outside, m.Key)
				}
			}
		}
	}
	return out, rep, nil
}

// tensorDict reports whether d is a state_dict: tensors under string keys.
func tensorDict(d *pickle.Dict) bool {
	for i, k := range d.Keys {
		if _, ok := k.(string); !ok {
			return false
		}
		if _, ok := d.Values[i].(*tensor.Tensor); !ok {
			return false
		}
	}
	return true
}

// topLevel lists the first components of c's tensor names, in order.
func topLevel(c *Checkpoint) []string {
	var out []string
	seen := map[string]bool{}
	for _, nt := range c.Tensors {
		k, _, _ := strings.Cut(nt.Name, ".")
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
		if len(out) == 10 {
			out = append(out, "...")
			break
		}
	}
	return out
}
