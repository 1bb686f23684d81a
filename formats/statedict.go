package formats

import (
	"fmt"
	"sort"
	"strings"

	"github.com/ckptkit/ckpt/pickle"
)

// StateDictKeys are the keys under which training scripts commonly save a
// model's state_dict inside a larger checkpoint, in the order
// StateDictKey tries them.
var StateDictKeys = []string{"state_dict", "model", "model_state_dict", "net", "network"}

// StateDictKey finds the model's state_dict in c and returns the key of
// the sub-tree that holds it ("state_dict", "model.module"), or "" when c
// is the state_dict itself. A key of StateDictKeys is taken when tensors
// are under it and it is one entry of a larger checkpoint: a key of the
// saved dict (Checkpoint.Object), or, for a checkpoint without one (a
// safetensors file made from a training checkpoint), when tensors or
// metadata lie outside it. Then, when every name under it starts with
// DataParallel's "module.", that is taken too.
func StateDictKey(c *Checkpoint) string {
	key := ""
	for _, k := range StateDictKeys {
		inside, outside := 0, 0
		for _, nt := range c.Tensors {
			if strings.HasPrefix(nt.Name, k+".") {
				inside++
			} else {
				outside++
			}
		}
		if inside == 0 {
			continue
		}
		if d, ok := c.Object.(*pickle.Dict); ok {
			if _, ok := d.Get(k); !ok {
				continue
			}
		} else if outside == 0 && !metaOutside(c, k) {
			continue
		}
		key = k
		break
	}
	prefix := ""
	if key != "" {
		prefix = key + "."
	}
	all := 0
	for _, nt := range c.Tensors {
		if !strings.HasPrefix(nt.Name, prefix) {
			continue
		}
		if !strings.HasPrefix(nt.Name, prefix+"module.") {
			return key
		}
		all++
	}
	if all == 0 {
		return key
	}
	return prefix + "module"
}

func metaOutside(c *Checkpoint, key string) bool {
	for _, m := range c.Meta {
		if !strings.HasPrefix(m.Key, key+".") {
			return true
		}
	}
	return false
}

// StateDict returns the model's state_dict in c: the sub-tree under key,
// named without "key.", or, when key is "", the one StateDictKey finds. It
// returns the key used ("" for c itself, returned as it is). It fails when
// key matches no tensor.
func StateDict(c *Checkpoint, key string) (*Checkpoint, string, error) {
	if key == "" {
		key = StateDictKey(c)
	}
	if key == "" {
		return c, "", nil
	}
	sd, _, err := Transform(c, Options{Key: key})
	if err != nil {
		return nil, "", err
	}
	return sd, key, nil
}

// FindPrefix returns the key prefix (ending in ".", or "" for the top
// level) under which names holds a model's state_dict, found by the names
// the model expects: a prefix p counts when p+e is one of names for an
// expected name e, cut at a "." boundary ("state_dict.model." for
// "state_dict.model.fc.weight" and the expected "fc.weight"). Only the
// outermost such prefixes count, so an inner match (an auxiliary head's
// "AuxLogits.fc.weight", a block's "layer1.0.conv1.weight") does not; matched
// reports whether any name matched. When none does, it returns the longest
// prefix every name shares. It is an error when several sub-trees each hold
// the model (a model and its EMA copy): the error names them, for --key or
// --strip-prefix to pick one.
//
// The model commands pass a classifier's keys as expected; convert --graph
// passes the graph's initializer names. It is the one rule ckpt finds a
// state_dict inside a larger checkpoint by.
func FindPrefix(names, expected []string) (prefix string, matched bool, err error) {
	want := make(map[string]bool, len(expected))
	for _, e := range expected {
		want[e] = true
	}
	var cands []string
	seen := map[string]bool{}
	for _, n := range names {
		for i := -1; i < len(n); i++ {
			if i >= 0 && n[i] != '.' {
				continue
			}
			if p := n[:i+1]; want[n[i+1:]] && !seen[p] {
				seen[p] = true
				cands = append(cands, p)
			}
		}
	}
	var top []string
	for _, p := range cands {
		inner := false
		for _, q := range cands {
			if q != p && strings.HasPrefix(p, q) {
				inner = true
				break
			}
		}
		if !inner {
			top = append(top, p)
		}
	}
	switch len(top) {
	case 0:
		return commonPrefix(names), false, nil
	case 1:
		return top[0], true, nil
	}
	sort.Strings(top)
	q := make([]string, len(top))
	for i, p := range top {
		q[i] = fmt.Sprintf("%q", p)
	}
	return "", true, fmt.Errorf("a model's state_dict is under each of %s: pick one with --key (without the final \".\") or --strip-prefix",
		strings.Join(q, ", "))
}

// commonPrefix returns the longest prefix ending in "." that every name
// has, "" when there is none.
func commonPrefix(names []string) string {
	if len(names) == 0 {
		return ""
	}
	p := names[0]
	for _, n := range names[1:] {
		for !strings.HasPrefix(n, p) {
			p = p[:len(p)-1]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i+1]
	}
	return ""
}
