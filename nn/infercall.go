package nn

// InferCall runs f as an inference call of m, as [Infer] runs m.Forward(x)
// for a module of one input: f gets ins as tensors of the call (ops on them
// record no graph, draw their results from an arena kept for the next
// call, and use m's folded, packed weights when m was [Prepare]d), and
// every tensor f returns that lives in the arena is copied out of it. It is
// for modules with several inputs or outputs, such as an imported graph.
//
// When one of ins already belongs to an inference call (m runs inside
// another module's Infer), f runs in that call: InferCall returns f(ins).
// Results that are one of ins are returned as the caller's tensor. Nil
// entries of ins are passed as nil.
func InferCall(m Module, ins []*Tensor, f func(ins []*Tensor) []*Tensor) []*Tensor {
	for _, x := range ins {
		if x != nil && x.arena != nil && x.arena.noGrad {
			return f(ins)
		}
	}
	a, _ := arenas.Get().(*arena)
	if a == nil {
		a = &arena{noGrad: true}
	}
	if pl := m.base().plan; pl != nil {
		a.plan = pl.check(m)
	}
	wrapped := make([]*Tensor, len(ins))
	for k, x := range ins {
		if x != nil {
			wrapped[k] = &Tensor{data: x.data, shape: x.shape, arena: a}
		}
	}
	var outs []*Tensor
	NoGrad(func() { outs = f(wrapped) })
	res := make([]*Tensor, len(outs))
	for k, y := range outs {
		switch {
		case y == nil:
		case indexOf(wrapped, y) >= 0:
			res[k] = ins[indexOf(wrapped, y)]
		case a.owns(y.data):
			res[k] = &Tensor{data: append([]float32(nil), y.data...), shape: append([]int(nil), y.shape...)}
		default:
			y.arena = nil
			res[k] = y
		}
	}
	a.reset()
	a.plan = nil
	arenas.Put(a)
	return res
}

func indexOf(ts []*Tensor, t *Tensor) int {
	for k, e := range ts {
		if e == t {
			return k
		}
	}
	return -1
}
