package graph

import (
	"fmt"
	"runtime/debug"
	"sync"

	"github.com/ckptkit/ckpt/nn"
)

// Fusion describes a node to the executor's fusion pass, which runs a
// convolution together with the batch normalization, residual addition and
// activation that follow it as one op ([nn.Conv2dFusedFn]: inside a
// prepared [nn.Infer] call the batch norm is folded into the packed weights
// and the rest applied in the GEMM's epilogue). The importer sets one of its
// fields to say what the node computes; a node without a Fusion is never
// fused. Fusion applies in eval mode when no gradient is to flow through
// the chain (nothing it reads requires one, or none is recorded);
// otherwise, and in training mode, every node runs its own kernel.
type Fusion struct {
	// Conv, on a convolution node (inputs x, weight and an optional bias),
	// returns the parameters of the nn convolution the node computes for
	// float32 4-D x and weight values, or false when it computes something
	// else or fails (asymmetric padding, sizes over the importer's limits):
	// the node's own kernel then runs and reports the error.
	Conv func(x, w *Value) (nn.ConvParams, bool)
	// BatchNorm marks an eval-mode batch normalization over dimension 1
	// (inputs x, scale, bias, mean, variance; one output) with epsilon Eps.
	BatchNorm bool
	Eps       float64
	// Add marks the elementwise sum of the node's two inputs.
	Add bool
	// Mul marks the elementwise product of the node's two inputs: x *
	// Sigmoid(x) and x * Hardsigmoid(x) after a convolution run as its SiLU
	// and Hardswish activation.
	Mul bool
	// Act, on an elementwise activation of the node's first input (other
	// inputs are constants, such as Clip's bounds), is the nn module that
	// computes it.
	Act nn.Module
}

// chain is a convolution and the nodes fused into it: the indices of the
// Conv, BatchNormalization, Add and activation nodes (-1 for none), and for
// a gated activation (x * Sigmoid(x)) the gate node, with act the Mul. It
// runs at its last node, where every input of every member is defined: the
// residual may be computed after the convolution.
type chain struct {
	conv, bn, add, gate, act int
	last                     int
	res                      int       // the Add input that is the residual (0 or 1)
	actMod                   nn.Module // a gated activation's module (SiLU, Hardswish)

	mu sync.Mutex
	bd *nn.BatchNorm2d // the batch norm's description, kept while its tensors are the same
}

// members returns the chain's nodes in order.
func (c *chain) members() []int {
	var ks []int
	for _, k := range []int{c.conv, c.bn, c.add, c.gate, c.act} {
		if k >= 0 {
			ks = append(ks, k)
		}
	}
	return ks
}

// planChains finds the fusable chains: a Conv node, then optionally a
// BatchNormalization, an Add and an activation, each the single consumer
// of the value before it (which is no graph output). It returns the chains
// by the index of their last node, and marks the other members absorbed.
func (g *Graph) planChains(derived []bool) (map[int]*chain, []bool) {
	chains := map[int]*chain{}
	absorbed := make([]bool, len(g.nodes))
	taken := make([]bool, len(g.nodes)) // a member of some chain
	uses := map[string]int{}
	consumer := map[string]int{}
	readers := map[string][]int{}
	for k, n := range g.nodes {
		for _, in := range n.Inputs {
			if in != "" {
				uses[in]++
				consumer[in] = k
				readers[in] = append(readers[in], k)
			}
		}
	}
	for _, out := range g.outputs {
		uses[out] += 2 // never absorbed
	}
	single := func(v string) (int, bool) {
		if uses[v] != 1 {
			return 0, false
		}
		k := consumer[v]
		return k, !derived[k] && !taken[k] && g.nodes[k].Fuse != nil && oneOutput(g.nodes[k])
	}
	for k, n := range g.nodes {
		if n.Fuse == nil || n.Fuse.Conv == nil || derived[k] || taken[k] || !oneOutput(n) || len(n.Inputs) < 2 {
			continue
		}
		c := &chain{conv: k, bn: -1, add: -1, gate: -1, act: -1, last: k}
		v := n.Outputs[0]
		if j, ok := single(v); ok && g.nodes[j].Fuse.BatchNorm && len(g.nodes[j].Inputs) == 5 && g.nodes[j].Inputs[0] == v {
			c.bn, c.last, v = j, j, g.nodes[j].Outputs[0]
		}
		if j, ok := single(v); ok && g.nodes[j].Fuse.Add && len(g.nodes[j].Inputs) == 2 {
			if in := g.nodes[j].Inputs; in[0] == v && in[1] != v {
				c.add, c.last, c.res, v = j, j, 1, g.nodes[j].Outputs[0]
			} else if in[1] == v && in[0] != v {
				c.add, c.last, c.res, v = j, j, 0, g.nodes[j].Outputs[0]
			}
		}
		if j, ok := single(v); ok && g.nodes[j].Fuse.Act != nil && len(g.nodes[j].Inputs) >= 1 && g.nodes[j].Inputs[0] == v {
			c.act, c.last = j, j
		} else if r := readers[v]; uses[v] == 2 && len(r) == 2 {
			// x * gate(x): the gate's only reader is the Mul, which reads x.
			for _, s := range [][2]int{{r[0], r[1]}, {r[1], r[0]}} {
				gate, mul := g.nodes[s[0]], g.nodes[s[1]]
				mod := gatedAct(gate.Fuse)
				if mod == nil || derived[s[0]] || taken[s[0]] || !oneOutput(gate) || gate.Inputs[0] != v {
					continue
				}
				if j, ok := single(gate.Outputs[0]); !ok || j != s[1] || !mul.Fuse.Mul || len(mul.Inputs) != 2 ||
					!(mul.Inputs[0] == v && mul.Inputs[1] == gate.Outputs[0] || mul.Inputs[1] == v && mul.Inputs[0] == gate.Outputs[0]) {
					continue
				}
				c.gate, c.act, c.last, c.actMod = s[0], s[1], s[1], mod
				break
			}
		}
		if c.last == k {
			continue
		}
		for _, j := range c.members() {
			absorbed[j], taken[j] = j != c.last, true
		}
		chains[c.last] = c
	}
	return chains, absorbed
}

// gatedAct returns the activation x * gate(x) is for a gate node's
// Fusion: SiLU for Sigmoid, Hardswish for Hardsigmoid; nil for others.
func gatedAct(f *Fusion) nn.Module {
	if f == nil {
		return nil
	}
	switch f.Act.(type) {
	case *nn.Sigmoid:
		return &nn.SiLU{}
	case *nn.Hardsigmoid:
		return &nn.Hardswish{}
	}
	return nil
}

// oneOutput reports whether n computes one value (its other outputs, if
// any, unused).
func oneOutput(n *Node) bool {
	if len(n.Outputs) == 0 || n.Outputs[0] == "" {
		return false
	}
	for _, o := range n.Outputs[1:] {
		if o != "" {
			return false
		}
	}
	return true
}

// runChain runs c as one fused op and stores its result. It reports false,
// having done nothing, when the values at hand are ones the fused op does
// not take (types, shapes, a call that records gradients): the caller then
// runs the members one by one.
func (g *Graph) runChain(c *chain, env map[string]*Value) (ok bool, err error) {
	conv := g.nodes[c.conv]
	f32 := func(name string) *nn.Tensor {
		if v := env[name]; v != nil && v.DType() == Float32 {
			return v.Tensor()
		}
		return nil
	}
	x, w := f32(conv.Inputs[0]), f32(conv.Inputs[1])
	if x == nil || w == nil || x.Dim() != 4 || w.Dim() != 4 {
		return false, nil
	}
	p, fits := conv.Fuse.Conv(env[conv.Inputs[0]], env[conv.Inputs[1]])
	if !fits {
		return false, nil
	}
	var b *nn.Tensor
	if len(conv.Inputs) > 2 && conv.Inputs[2] != "" {
		if b = f32(conv.Inputs[2]); b == nil || b.Numel() != w.Shape()[0] {
			return false, nil
		}
	}
	out := convOutShape(x.Shape(), w.Shape(), p)
	if out == nil {
		return false, nil
	}
	ts := []*nn.Tensor{x, w, b}
	var bd *nn.BatchNorm2d
	if c.bn >= 0 {
		n := g.nodes[c.bn]
		var st [4]*nn.Tensor
		for i := range st {
			if st[i] = f32(n.Inputs[i+1]); st[i] == nil || st[i].Numel() != out[1] {
				return false, nil
			}
		}
		bd = c.describeBN(st, n.Fuse.Eps)
		ts = append(ts, st[:]...)
	}
	var res *nn.Tensor
	if c.add >= 0 {
		if res = f32(g.nodes[c.add].Inputs[c.res]); res == nil || !sameInts(res.Shape(), out) {
			return false, nil
		}
		ts = append(ts, res)
	}
	if nn.GradEnabled() {
		for _, t := range ts {
			if t != nil && t.RequiresGrad() {
				return false, nil
			}
		}
	}
	act := c.actMod
	if act == nil && c.act >= 0 {
		act = g.nodes[c.act].Fuse.Act
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("graph: %s (fused with what follows): %v", conv.Describe(), r)
			if debugPanics {
				err = fmt.Errorf("%w\n%s", err, debug.Stack())
			}
		}
	}()
	y := nn.Conv2dFusedFn(x, w, b, p, bd, res, act)
	env[g.nodes[c.last].Outputs[0]] = FromTensor(y)
	return true, nil
}

// describeBN returns the batch norm description of tensors st (scale,
// bias, mean, variance): the one kept from the last call when they are the
// same tensors, so that a prepared module keeps its folded weights.
func (c *chain) describeBN(st [4]*nn.Tensor, eps float64) *nn.BatchNorm2d {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d := c.bd; d != nil && d.Weight == st[0] && d.Bias == st[1] && d.RunningMean == st[2] && d.RunningVar == st[3] && d.Eps == eps {
		return d
	}
	c.bd = &nn.BatchNorm2d{NumFeatures: st[0].Numel(), Eps: eps, Weight: st[0], Bias: st[1], RunningMean: st[2], RunningVar: st[3]}
	return c.bd
}

// convOutShape returns the output shape of a 2-D convolution of x [N, C, H,
// W] with weight w [O, C/groups, kH, kW], or nil when it is empty.
func convOutShape(x, w []int, p nn.ConvParams) []int {
	out := []int{x[0], w[0], 0, 0}
	for d := range 2 {
		s, dl := max(p.Stride[d], 1), max(p.Dilation[d], 1)
		out[2+d] = (x[2+d]+2*p.Padding[d]-dl*(w[2+d]-1)-1)/s + 1
		if out[2+d] <= 0 {
			return nil
		}
	}
	return out
}

func sameInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if a[k] != b[k] {
			return false
		}
	}
	return true
}
