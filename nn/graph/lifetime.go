package graph

import (
	"slices"
	"unsafe"

	"github.com/ckptkit/ckpt/nn"
)

// The executor's value planning: in an inference call (eval mode, no
// gradients recorded), a node's intermediate result is dropped after the
// last node that reads it (its memory given back to the call's arena,
// nn.Release, when nothing alive shares it), and an elementwise node
// whose input dies at it (a Relu after a pooling, an Add of two
// intermediates) writes its result over that input instead of new memory.

// planLifetimes returns, for each node position k, the values whose last
// reader runs at k (members of a fused chain run at the chain's last
// node), sorted so that memory is given back in the same order every call.
// Graph inputs and outputs, constants, parameters and values cached per
// input shape never die.
func (g *Graph) planLifetimes(derived []bool, chains map[int]*chain) (dies [][]string, mortal map[string]bool) {
	pos := make([]int, len(g.nodes))
	for k := range pos {
		pos[k] = k
	}
	for _, c := range chains {
		for _, m := range c.members() {
			pos[m] = c.last
		}
	}
	keep := map[string]bool{"": true}
	for _, in := range g.inputs {
		keep[in.Name] = true
	}
	for _, out := range g.outputs {
		keep[out] = true
	}
	for name := range g.consts {
		keep[name] = true
	}
	for name := range g.live {
		keep[name] = true
	}
	last := map[string]int{}
	for k, n := range g.nodes {
		for _, out := range n.Outputs {
			if derived[k] {
				keep[out] = true
			}
			if !keep[out] {
				last[out] = pos[k]
			}
		}
	}
	for k, n := range g.nodes {
		for _, in := range n.Inputs {
			if !keep[in] {
				last[in] = max(last[in], pos[k])
			}
		}
	}
	dies = make([][]string, len(g.nodes))
	mortal = map[string]bool{}
	for name, k := range last {
		dies[k] = append(dies[k], name)
		mortal[name] = true
	}
	for _, d := range dies {
		slices.Sort(d)
	}
	return dies, mortal
}

// span is the memory of a float value, [lo, hi) in bytes.
type span struct{ lo, hi uintptr }

func spanOf(v *Value) (span, bool) {
	if v == nil || v.DType() != Float32 || v.Tensor() == nil {
		return span{}, false
	}
	d := v.Tensor().Data()
	if cap(d) == 0 {
		return span{}, false
	}
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(d)))
	return span{lo, lo + uintptr(cap(d))*4}, true
}

func (s span) overlaps(t span) bool { return s.lo < t.hi && t.lo < s.hi }

// lifetimes tracks the memory of the values of one inference call.
type lifetimes struct {
	dies   [][]string
	mortal map[string]bool
	env    map[string]*Value
	fixed  []span          // values that never die (parameters, constants, inputs, outputs, cached values)
	live   map[string]span // intermediates computed and not dead yet
}

func newLifetimes(dies [][]string, mortal map[string]bool, env map[string]*Value) *lifetimes {
	l := &lifetimes{dies: dies, mortal: mortal, env: env, live: map[string]span{}}
	for _, v := range env {
		if s, ok := spanOf(v); ok {
			l.fixed = append(l.fixed, s)
		}
	}
	return l
}

// computed records the outputs of node n once they are in env.
func (l *lifetimes) computed(n *Node) {
	for _, out := range n.Outputs {
		if s, ok := spanOf(l.env[out]); ok && out != "" {
			if l.mortal[out] {
				l.live[out] = s
			} else {
				l.fixed = append(l.fixed, s)
			}
		}
	}
}

// shared reports whether the memory of v overlaps that of a value still
// alive other than the one called name.
func (l *lifetimes) shared(name string, v *Value) bool {
	s, ok := spanOf(v)
	if !ok {
		return true
	}
	for _, t := range l.fixed {
		if s.overlaps(t) {
			return true
		}
	}
	for n, t := range l.live {
		if n != name && s.overlaps(t) {
			return true
		}
	}
	return false
}

// dying reports whether in (read by the node at position k) is an
// intermediate whose last reader is that node and whose memory nothing
// else alive shares: the node may overwrite it.
func (l *lifetimes) dying(k int, in string) bool {
	return slices.Contains(l.dies[k], in) && !l.shared(in, l.env[in])
}

// retire drops the values that die at position k, giving their memory back
// to the call's arena when no live value shares it.
func (l *lifetimes) retire(k int) {
	d := l.dies[k]
	if len(d) == 0 {
		return
	}
	vals := make([]*Value, len(d))
	for i, name := range d {
		vals[i] = l.env[name]
		delete(l.env, name)
		delete(l.live, name)
	}
	for i, v := range vals {
		if v == nil || slices.Contains(vals[:i], v) {
			continue
		}
		if !l.shared("", v) {
			nn.Release(v.Tensor())
		}
	}
}

// inPlace runs node n (at position k) over its dying input when it is an
// elementwise node the executor knows (an activation of one float input,
// the Add of two float values of one shape), reporting whether it did.
func (l *lifetimes) inPlace(k int, n *Node) bool {
	f := n.Fuse
	if f == nil || !oneOutput(n) || len(n.Inputs) == 0 {
		return false
	}
	switch {
	case f.Act != nil:
		x := l.env[n.Inputs[0]]
		act := inplaceAct(f.Act)
		if x == nil || x.DType() != Float32 || act == nil || !l.dying(k, n.Inputs[0]) {
			return false
		}
		t := act.Forward(x.Tensor())
		if t != x.Tensor() {
			return false // the module computed out of place: keep its result anyway
		}
		l.env[n.Outputs[0]] = FromTensor(t)
		return true
	case f.Add && len(n.Inputs) == 2:
		a, b := l.env[n.Inputs[0]], l.env[n.Inputs[1]]
		if a == nil || b == nil || a.DType() != Float32 || b.DType() != Float32 || !sameInts(a.Shape(), b.Shape()) {
			return false
		}
		dst, src := a, b
		if !l.dying(k, n.Inputs[0]) {
			if !l.dying(k, n.Inputs[1]) {
				return false
			}
			dst, src = b, a
		}
		d, s := dst.Tensor().Data(), src.Tensor().Data()
		for i := range d {
			d[i] += s[i]
		}
		l.env[n.Outputs[0]] = FromTensor(dst.Tensor())
		return true
	}
	return false
}

// inplaceAct returns the in-place form of a fusable activation module (the
// module with Inplace set, which overwrites its input when no graph is
// recorded), nil for one without.
func inplaceAct(m nn.Module) nn.Module {
	switch m.(type) {
	case *nn.ReLU:
		return inplaceReLU
	case *nn.ReLU6:
		return inplaceReLU6
	case *nn.Hardswish:
		return inplaceHardswish
	}
	return nil
}

var (
	inplaceReLU      = &nn.ReLU{Inplace: true}
	inplaceReLU6     = &nn.ReLU6{Inplace: true}
	inplaceHardswish = &nn.Hardswish{Inplace: true}
)
