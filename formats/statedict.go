package formats

import (
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

// KeyFor returns the key of the sub-tree of c whose tensors, named without
// "key.", include the most of names (the initializers of an ONNX graph,
// say), and how many it includes; "" (c itself) wins ties, then the
// shortest key. Candidate keys are the prefixes that turn a tensor name of
// c into one of names, so any nesting (a Lightning checkpoint's
// "state_dict.model") is found.
func KeyFor(c *Checkpoint, names []string) (key string, found int) {
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	count := func(prefix string) int {
		n := 0
		for _, nt := range c.Tensors {
			if rest, ok := strings.CutPrefix(nt.Name, prefix); ok && want[rest] {
				n++
			}
		}
		return n
	}
	best, bestN := "", count("")
	tried := map[string]bool{"": true}
	for _, nt := range c.Tensors {
		for i := 0; i < len(nt.Name); i++ {
			if nt.Name[i] != '.' || !want[nt.Name[i+1:]] {
				continue
			}
			p := nt.Name[:i+1]
			if tried[p] {
				continue
			}
			tried[p] = true
			if n := count(p); n > bestN || n == bestN && n > 0 && best != "" && len(p) < len(best) {
				best, bestN = p, n
			}
		}
		if len(tried) > 64 {
			break // enough candidates: checkpoints nest a model under one or two prefixes
		}
	}
	return strings.TrimSuffix(best, "."), bestN
}
