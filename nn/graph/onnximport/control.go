package onnximport

import (
	"fmt"
	"math"

	"github.com/ckptkit/ckpt/nn/graph"
)

// If and Loop: subgraphs imported as graphs of their own, whose inputs
// are their formal inputs followed by the values they capture from the
// enclosing graph (the node's extra inputs).

func init() {
	register(buildIf, "If")
	register(buildLoop, "Loop")
}

func buildIf(c *nodeCtx) (graph.Kernel, error) {
	then, err := c.importSub("then_branch")
	if err != nil {
		return nil, err
	}
	els, err := c.importSub("else_branch")
	if err != nil {
		return nil, err
	}
	nout := len(c.n.Output)
	if len(then.Outputs()) != nout || len(els.Outputs()) != nout {
		return nil, c.errorf("branches with %d and %d outputs for %d", len(then.Outputs()), len(els.Outputs()), nout)
	}
	return func(ctx *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		if in[0] == nil || in[0].Numel() != 1 {
			return nil, fmt.Errorf("the condition must be one element")
		}
		branch := els
		if in[0].Int64s()[0] != 0 {
			branch = then
		}
		return branch.RunOrdered(in[1:]...)
	}, nil
}

func buildLoop(c *nodeCtx) (graph.Kernel, error) {
	body, err := c.importSub("body")
	if err != nil {
		return nil, err
	}
	nFormal := len(c.n.Input)
	nCarried := nFormal - 2
	if nCarried < 0 || len(body.Inputs()) != 2+nCarried+len(c.captured) || len(body.Outputs()) < 1+nCarried {
		return nil, c.errorf("a body of %d inputs and %d outputs for %d loop-carried values", len(body.Inputs()), len(body.Outputs()), nCarried)
	}
	nScan := len(body.Outputs()) - 1 - nCarried
	limit := c.opts.MaxElements
	return func(ctx *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		maxTrip := int64(math.MaxInt64)
		if in[0] != nil && in[0].Numel() > 0 {
			maxTrip = in[0].Int64s()[0]
		}
		cond := true
		if in[1] != nil && in[1].Numel() > 0 {
			cond = in[1].Int64s()[0] != 0
		}
		carried := append([]*graph.Value{}, in[2:nFormal]...)
		captured := in[nFormal:]
		scans := make([][]*graph.Value, nScan)
		for i := int64(0); cond && i < maxTrip; i++ {
			if i >= MaxLoopIterations {
				return nil, fmt.Errorf("more than %d iterations", MaxLoopIterations)
			}
			args := append([]*graph.Value{graph.Scalar64(i), graph.FromInt64s(graph.Bool, []int{}, []int64{b2i(cond)})}, carried...)
			outs, err := body.RunOrdered(append(args, captured...)...)
			if err != nil {
				return nil, err
			}
			cond = outs[0].Int64s()[0] != 0
			carried = outs[1 : 1+nCarried]
			for k := 0; k < nScan; k++ {
				scans[k] = append(scans[k], outs[1+nCarried+k])
			}
		}
		res := append([]*graph.Value{}, carried...)
		for k := 0; k < nScan; k++ {
			if len(scans[k]) == 0 {
				return nil, fmt.Errorf("scan output %d has no iterations to take its shape from", k)
			}
			first := scans[k][0]
			n := len(scans[k]) * first.Numel()
			if err := checkElems(n, limit); err != nil {
				return nil, err
			}
			flat := make([]*graph.Value, len(scans[k]))
			for j, v := range scans[k] {
				if !sameShape(v.Shape(), first.Shape()) || v.DType() != first.DType() {
					return nil, fmt.Errorf("scan output %d changes from %s to %s", k, first, v)
				}
				flat[j] = v.WithShape([]int{v.Numel()})
			}
			res = append(res, concatFlat(flat).WithShape(append([]int{len(scans[k])}, first.Shape()...)))
		}
		return res, nil
	}, nil
}

func init() { register(buildScan, "Scan") }

// buildScan is Scan scanning along axis 0 forward (other axes and
// directions are unsupported). Opset 8's batched form (a leading
// sequence_lens input, a batch axis before the scanned one on every state
// and scan input and output) runs the body over each batch row.
func buildScan(c *nodeCtx) (graph.Kernel, error) {
	batched := c.opset < 9
	for _, a := range []string{"scan_input_axes", "scan_input_directions", "scan_output_axes", "scan_output_directions", "directions"} {
		for _, v := range c.ints(a, nil) {
			if v != 0 {
				return nil, c.unsupported("%s %v", a, c.ints(a, nil))
			}
		}
	}
	m := int(c.int("num_scan_inputs", 0))
	first := 0
	if batched {
		first = 1 // sequence_lens
		if len(c.n.Input) > 0 && c.n.Input[0] != "" {
			return nil, c.unsupported("sequence_lens")
		}
	}
	nFormal := len(c.n.Input) - first
	nState := nFormal - m
	if m <= 0 || nState < 0 {
		return nil, c.errorf("%d scan inputs of %d inputs", m, nFormal)
	}
	body, err := c.importSub("body")
	if err != nil {
		return nil, err
	}
	if len(body.Inputs()) != nFormal+len(c.captured) || len(body.Outputs()) < nState {
		return nil, c.errorf("a body of %d inputs and %d outputs for %d states and %d scan inputs", len(body.Inputs()), len(body.Outputs()), nState, m)
	}
	nOut := len(body.Outputs()) - nState
	limit := c.opts.MaxElements
	// scan runs the body over states and scan inputs of one sequence.
	scan := func(state, scanIn, captured []*graph.Value) ([]*graph.Value, error) {
		steps := -1
		for _, v := range scanIn {
			if v.Rank() < 1 || steps >= 0 && v.Shape()[0] != steps {
				return nil, fmt.Errorf("scan inputs of different lengths")
			}
			steps = v.Shape()[0]
		}
		if steps > MaxLoopIterations {
			return nil, fmt.Errorf("more than %d iterations", MaxLoopIterations)
		}
		outs := make([][]*graph.Value, nOut)
		for t := 0; t < steps; t++ {
			args := append([]*graph.Value{}, state...)
			for _, v := range scanIn {
				args = append(args, sliceAxis(v, 0, t, 1).WithShape(v.Shape()[1:]))
			}
			res, err := body.RunOrdered(append(args, captured...)...)
			if err != nil {
				return nil, err
			}
			state = res[:nState]
			for k := 0; k < nOut; k++ {
				outs[k] = append(outs[k], res[nState+k])
			}
		}
		result := append([]*graph.Value{}, state...)
		for k := 0; k < nOut; k++ {
			v, err := stack(outs[k], limit)
			if err != nil {
				return nil, fmt.Errorf("scan output %d: %w", k, err)
			}
			result = append(result, v)
		}
		return result, nil
	}
	return func(ctx *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		if !batched {
			return scan(in[:nState], in[nState:nFormal], in[nFormal:])
		}
		in = in[1:]
		batch := -1
		for _, v := range in[:nFormal] {
			if v.Rank() < 1 || batch >= 0 && v.Shape()[0] != batch {
				return nil, fmt.Errorf("states and scan inputs of different batch sizes")
			}
			batch = v.Shape()[0]
		}
		rows := make([][]*graph.Value, len(body.Outputs()))
		for b := 0; b < batch; b++ {
			row := make([]*graph.Value, nFormal)
			for k, v := range in[:nFormal] {
				row[k] = sliceAxis(v, 0, b, 1).WithShape(v.Shape()[1:])
			}
			res, err := scan(row[:nState], row[nState:], in[nFormal:])
			if err != nil {
				return nil, err
			}
			for k, v := range res {
				rows[k] = append(rows[k], v)
			}
		}
		out := make([]*graph.Value, len(rows))
		for k := range rows {
			v, err := stack(rows[k], limit)
			if err != nil {
				return nil, fmt.Errorf("output %d: %w", k, err)
			}
			out[k] = v
		}
		return out, nil
	}, nil
}

// stack joins values of one shape and type along a new leading axis.
func stack(vs []*graph.Value, limit int) (*graph.Value, error) {
	if len(vs) == 0 {
		return nil, fmt.Errorf("no iterations to take its shape from")
	}
	first := vs[0]
	if err := checkElems(len(vs)*first.Numel(), limit); err != nil {
		return nil, err
	}
	flat := make([]*graph.Value, len(vs))
	for j, v := range vs {
		if !sameShape(v.Shape(), first.Shape()) || v.DType() != first.DType() {
			return nil, fmt.Errorf("changes from %s to %s", first, v)
		}
		flat[j] = v.WithShape([]int{v.Numel()})
	}
	return concatFlat(flat).WithShape(append([]int{len(vs)}, first.Shape()...)), nil
}
