package onnximport

import (
	"fmt"
	"math"

	"github.com/ckptkit/ckpt/nn/graph"
)

// RNN, GRU and LSTM (forward only, computed in float64).

func init() { register(buildRNN, "RNN", "GRU", "LSTM") }

func activation(name string, alpha, beta float64) (func(float64) float64, error) {
	switch name {
	case "Sigmoid":
		return sigmoid, nil
	case "Tanh":
		return math.Tanh, nil
	case "Relu":
		return func(x float64) float64 { return math.Max(x, 0) }, nil
	case "Affine":
		return func(x float64) float64 { return alpha*x + beta }, nil
	case "LeakyRelu":
		return func(x float64) float64 {
			if x < 0 {
				return alpha * x
			}
			return x
		}, nil
	case "HardSigmoid":
		return func(x float64) float64 { return math.Max(0, math.Min(1, alpha*x+beta)) }, nil
	case "Softsign":
		return func(x float64) float64 { return x / (1 + math.Abs(x)) }, nil
	case "Softplus":
		return func(x float64) float64 { return math.Log1p(math.Exp(x)) }, nil
	}
	return nil, fmt.Errorf("activation %q", name)
}

func buildRNN(c *nodeCtx) (graph.Kernel, error) {
	op := c.n.OpType
	gates := map[string]int{"RNN": 1, "GRU": 3, "LSTM": 4}[op]
	defActs := map[string][]string{"RNN": {"Tanh"}, "GRU": {"Sigmoid", "Tanh"}, "LSTM": {"Sigmoid", "Tanh", "Tanh"}}[op]
	dir := c.str("direction", "forward")
	dirs := 1
	if dir == "bidirectional" {
		dirs = 2
	} else if dir != "forward" && dir != "reverse" {
		return nil, c.unsupported("direction %q", dir)
	}
	names := defActs
	if a := c.attrs["activations"]; a != nil {
		names = nil
		for _, s := range a.Strings {
			names = append(names, string(s))
		}
	}
	alphas, betas := c.floats("activation_alpha", nil), c.floats("activation_beta", nil)
	var acts []func(float64) float64
	for k, n := range names {
		al, be := 0.01, 0.0
		if n == "HardSigmoid" {
			al, be = 0.2, 0.5
		}
		if n == "Affine" {
			al = 1
		}
		if k < len(alphas) {
			al = float64(alphas[k])
		}
		if k < len(betas) {
			be = float64(betas[k])
		}
		f, err := activation(n, al, be)
		if err != nil {
			return nil, c.unsupported("%v", err)
		}
		acts = append(acts, f)
	}
	if len(acts) < len(defActs)*dirs {
		for len(acts) < len(defActs)*dirs {
			acts = append(acts, acts[len(acts)-len(defActs)])
		}
	}
	clip := float64(c.float("clip", 0))
	hidden := int(c.int("hidden_size", 0))
	layout := c.int("layout", 0)
	lbr := c.int("linear_before_reset", 0) != 0
	if c.int("input_forget", 0) != 0 {
		return nil, c.unsupported("input_forget")
	}
	nout := len(c.n.Output)
	limit := c.opts.MaxElements
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x, w, r := in[0], in[1], in[2]
		if layout != 0 {
			x = permute(x, []int{1, 0, 2})
		}
		if x.Rank() != 3 || w.Rank() != 3 || r.Rank() != 3 {
			return nil, fmt.Errorf("input %v, W %v, R %v", x.Shape(), w.Shape(), r.Shape())
		}
		seq, batch, isz := x.Shape()[0], x.Shape()[1], x.Shape()[2]
		h := hidden
		if h == 0 {
			h = r.Shape()[2]
		}
		if w.Shape()[0] != dirs || w.Shape()[1] != gates*h || w.Shape()[2] != isz || r.Shape()[1] != gates*h || r.Shape()[2] != h {
			return nil, fmt.Errorf("weights W %v and R %v do not fit %d directions, %d gates of %d and input %d", w.Shape(), r.Shape(), dirs, gates, h, isz)
		}
		if n := seq * dirs * batch * h; n > limit || h > limit {
			return nil, checkElems(limit+1, limit)
		}
		xf, wf, rf := x.Float64s(), w.Float64s(), r.Float64s()
		bf := make([]float64, dirs*2*gates*h)
		if v := opt(in, 3); v != nil {
			bf = v.Float64s()
		}
		var lens []int
		if v := opt(in, 4); v != nil {
			lens = v.Ints()
		}
		h0 := make([]float64, dirs*batch*h)
		if v := opt(in, 5); v != nil {
			h0 = append([]float64{}, v.Float64s()...)
		}
		c0 := make([]float64, dirs*batch*h)
		var peep []float64
		if op == "LSTM" {
			if v := opt(in, 6); v != nil {
				c0 = append([]float64{}, v.Float64s()...)
			}
			if v := opt(in, 7); v != nil {
				peep = v.Float64s()
			}
		}
		y := make([]float64, seq*dirs*batch*h)
		yh := make([]float64, dirs*batch*h)
		yc := make([]float64, dirs*batch*h)
		cl := func(v float64) float64 {
			if clip > 0 {
				return math.Max(-clip, math.Min(clip, v))
			}
			return v
		}
		for d := 0; d < dirs; d++ {
			reverse := dir == "reverse" || d == 1
			W := wf[d*gates*h*isz:]
			R := rf[d*gates*h*h:]
			Wb, Rb := bf[d*2*gates*h:], bf[d*2*gates*h+gates*h:]
			f, g, hh := acts[d*len(defActs)], acts[min(d*len(defActs)+1, len(acts)-1)], acts[min(d*len(defActs)+2, len(acts)-1)]
			for b := 0; b < batch; b++ {
				H := append([]float64{}, h0[(d*batch+b)*h:(d*batch+b+1)*h]...)
				C := append([]float64{}, c0[(d*batch+b)*h:(d*batch+b+1)*h]...)
				n := seq
				if lens != nil {
					n = min(lens[b], seq)
				}
				for step := 0; step < n; step++ {
					t := step
					if reverse {
						t = n - 1 - step
					}
					xt := xf[(t*batch+b)*isz : (t*batch+b+1)*isz]
					// xw[g*h+j] = Xt·W_gj + Wb, hr[...] = H·R_gj + Rb
					xw := make([]float64, gates*h)
					hr := make([]float64, gates*h)
					for q := 0; q < gates*h; q++ {
						s := Wb[q]
						for k := 0; k < isz; k++ {
							s += xt[k] * W[q*isz+k]
						}
						xw[q] = s
						s = Rb[q]
						for k := 0; k < h; k++ {
							s += H[k] * R[q*h+k]
						}
						hr[q] = s
					}
					next := make([]float64, h)
					switch op {
					case "RNN":
						for j := 0; j < h; j++ {
							next[j] = f(cl(xw[j] + hr[j]))
						}
					case "GRU":
						for j := 0; j < h; j++ {
							z := f(cl(xw[j] + hr[j]))
							rr := f(cl(xw[h+j] + hr[h+j]))
							var ht float64
							if lbr {
								ht = g(cl(xw[2*h+j] + rr*hr[2*h+j]))
							} else {
								s := Rb[2*h+j]
								for k := 0; k < h; k++ {
									rk := f(cl(xw[h+k] + hr[h+k]))
									s += rk * H[k] * R[(2*h+j)*h+k]
								}
								ht = g(cl(xw[2*h+j] + s))
							}
							next[j] = (1-z)*ht + z*H[j]
						}
					case "LSTM":
						for j := 0; j < h; j++ {
							pi, po, pf := 0.0, 0.0, 0.0
							if peep != nil {
								pi, po, pf = peep[d*3*h+j], peep[d*3*h+h+j], peep[d*3*h+2*h+j]
							}
							i := f(cl(xw[j] + hr[j] + pi*C[j]))
							fg := f(cl(xw[2*h+j] + hr[2*h+j] + pf*C[j]))
							cc := g(cl(xw[3*h+j] + hr[3*h+j]))
							C[j] = fg*C[j] + i*cc
							o := f(cl(xw[h+j] + hr[h+j] + po*C[j]))
							next[j] = o * hh(C[j])
						}
					}
					H = next
					copy(y[((t*dirs+d)*batch+b)*h:], H)
				}
				copy(yh[(d*batch+b)*h:], H)
				copy(yc[(d*batch+b)*h:], C)
			}
		}
		dt := x.DType()
		Y := graph.Make(dt, []int{seq, dirs, batch, h}, y)
		Yh := graph.Make(dt, []int{dirs, batch, h}, yh)
		Yc := graph.Make(dt, []int{dirs, batch, h}, yc)
		if layout != 0 {
			Y = permute(Y, []int{2, 0, 1, 3})
			Yh = permute(Yh, []int{1, 0, 2})
			Yc = permute(Yc, []int{1, 0, 2})
		}
		outs := []*graph.Value{Y, Yh, Yc}
		return outs[:min(nout, len(outs))], nil
	}, nil
}
