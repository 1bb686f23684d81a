package onnximport

import (
	"fmt"
	"math"

	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/graph"
)

// RNN, GRU and LSTM: computed in float64 for inference; when a float32
// input requires a gradient, composed of nn's differentiable ops
// (rnnTensor), so autograd runs back through time.

func init() { register(buildRNN, "RNN", "GRU", "LSTM") }

// rnnAct is one of the RNN family's activation functions and its
// derivative dy/dx from x and y = f(x), for the autograd path.
type rnnAct struct {
	f  func(float64) float64
	df func(x, y float64) float64
}

func activation(name string, alpha, beta float64) (rnnAct, error) {
	switch name {
	case "Sigmoid":
		return rnnAct{sigmoid, func(_, y float64) float64 { return y * (1 - y) }}, nil
	case "Tanh":
		return rnnAct{math.Tanh, func(_, y float64) float64 { return 1 - y*y }}, nil
	case "Relu":
		return rnnAct{func(x float64) float64 { return math.Max(x, 0) }, func(x, _ float64) float64 { return b2f(x > 0) }}, nil
	case "Affine":
		return rnnAct{func(x float64) float64 { return alpha*x + beta }, func(_, _ float64) float64 { return alpha }}, nil
	case "LeakyRelu":
		return rnnAct{func(x float64) float64 {
			if x < 0 {
				return alpha * x
			}
			return x
		}, func(x, _ float64) float64 {
			if x < 0 {
				return alpha
			}
			return 1
		}}, nil
	case "HardSigmoid":
		return rnnAct{func(x float64) float64 { return math.Max(0, math.Min(1, alpha*x+beta)) }, func(x, _ float64) float64 {
			if v := alpha*x + beta; v > 0 && v < 1 {
				return alpha
			}
			return 0
		}}, nil
	case "Softsign":
		return rnnAct{func(x float64) float64 { return x / (1 + math.Abs(x)) }, func(x, _ float64) float64 {
			d := 1 + math.Abs(x)
			return 1 / (d * d)
		}}, nil
	case "Softplus":
		return rnnAct{func(x float64) float64 { return math.Log1p(math.Exp(x)) }, func(x, _ float64) float64 { return sigmoid(x) }}, nil
	}
	return rnnAct{}, fmt.Errorf("activation %q", name)
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
	var acts []rnnAct
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
		if wantsGrad(in...) {
			cfg := rnnConfig{op: op, dir: dir, dirs: dirs, gates: gates, h: h, clip: clip, lbr: lbr, acts: acts, per: len(defActs)}
			outs, err := cfg.run(x, in)
			if err != nil {
				return nil, err
			}
			if layout != 0 {
				outs[0] = permute(outs[0], []int{2, 0, 1, 3})
				outs[1] = permute(outs[1], []int{1, 0, 2})
				outs[2] = permute(outs[2], []int{1, 0, 2})
			}
			return outs[:min(nout, len(outs))], nil
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
			f, g, hh := acts[d*len(defActs)].f, acts[min(d*len(defActs)+1, len(acts)-1)].f, acts[min(d*len(defActs)+2, len(acts)-1)].f
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

// wantsGrad reports whether autograd would record an op on vs: grad mode
// is on and a float32 operand requires a gradient.
func wantsGrad(vs ...*graph.Value) bool {
	if !nn.GradEnabled() {
		return false
	}
	for _, v := range vs {
		if v != nil && v.Tensor() != nil && v.Tensor().RequiresGrad() {
			return true
		}
	}
	return false
}

// rnnConfig is an RNN/GRU/LSTM node's configuration for rnnConfig.run.
type rnnConfig struct {
	op       string
	dir      string
	dirs     int
	gates, h int
	clip     float64
	lbr      bool
	acts     []rnnAct
	per      int // activations per direction
}

// run computes the node's outputs Y [seq, dirs, batch, h], Y_h and Y_c
// [dirs, batch, h] from float32 operands with nn's differentiable ops: the
// same recurrence as the float64 kernel, so its gradient is
// backpropagation through time. x is [seq, batch, input] (layout 0).
// Batch rows with a sequence length of their own run one at a time.
func (c *rnnConfig) run(x *graph.Value, in []*graph.Value) ([]*graph.Value, error) {
	seq, batch, isz := x.Shape()[0], x.Shape()[1], x.Shape()[2]
	h, gates, dirs := c.h, c.gates, c.dirs
	f32 := func(v *graph.Value) *nn.Tensor { return v.Cast(graph.Float32).Tensor() }
	X := f32(x)
	W, R := f32(in[1]), f32(in[2])
	var B, H0, C0, P *nn.Tensor
	if v := opt(in, 3); v != nil {
		B = f32(v)
	}
	var lens []int
	if v := opt(in, 4); v != nil {
		lens = v.Ints()
	}
	if v := opt(in, 5); v != nil {
		H0 = f32(v)
	}
	if c.op == "LSTM" {
		if v := opt(in, 6); v != nil {
			C0 = f32(v)
		}
		if v := opt(in, 7); v != nil {
			P = f32(v)
		}
	}
	act := func(a rnnAct, t *nn.Tensor) *nn.Tensor {
		if c.clip > 0 {
			cl := c.clip
			t = unary(graph.FromTensor(t), func(v float64) float64 { return math.Max(-cl, math.Min(cl, v)) },
				func(v, _ float64) float64 { return b2f(v > -cl && v < cl) }).Tensor()
		}
		return unary(graph.FromTensor(t), a.f, a.df).Tensor()
	}
	gate := func(t *nn.Tensor, q int) *nn.Tensor { return t.Narrow(1, q*h, h) }
	// Row groups: every row at once, or one row at a time when the rows
	// have sequence lengths.
	var groups [][]int
	if lens == nil {
		all := make([]int, batch)
		for b := range all {
			all[b] = b
		}
		groups = [][]int{all}
	} else {
		if len(lens) != batch {
			return nil, fmt.Errorf("sequence_lens of %d for a batch of %d", len(lens), batch)
		}
		for b := 0; b < batch; b++ {
			groups = append(groups, []int{b})
		}
	}
	// ys[t][d][b] is row b's output at step t of direction d (nil: zeros).
	ys := make([][][]*nn.Tensor, seq)
	for t := range ys {
		ys[t] = make([][]*nn.Tensor, dirs)
		for d := range ys[t] {
			ys[t][d] = make([]*nn.Tensor, batch)
		}
	}
	yh := make([][]*nn.Tensor, dirs)
	yc := make([][]*nn.Tensor, dirs)
	rows := func(t *nn.Tensor, g []int) *nn.Tensor { // rows g of t [batch, n]
		if len(g) == t.Shape()[0] {
			return t
		}
		return t.Narrow(0, g[0], 1)
	}
	for d := 0; d < dirs; d++ {
		reverse := c.dir == "reverse" || d == 1
		Wd := W.Narrow(0, d, 1).Reshape(gates*h, isz).Transpose(0, 1)
		Rd := R.Narrow(0, d, 1).Reshape(gates*h, h).Transpose(0, 1)
		var Wb, Rb *nn.Tensor
		if B != nil {
			bd := B.Narrow(0, d, 1).Reshape(2 * gates * h)
			Wb, Rb = bd.Narrow(0, 0, gates*h), bd.Narrow(0, gates*h, gates*h)
		}
		f := c.acts[d*c.per]
		g := c.acts[min(d*c.per+1, len(c.acts)-1)]
		hh := c.acts[min(d*c.per+2, len(c.acts)-1)]
		yh[d] = make([]*nn.Tensor, batch)
		yc[d] = make([]*nn.Tensor, batch)
		for _, grp := range groups {
			nb := len(grp)
			var H, C *nn.Tensor
			if H0 != nil {
				H = rows(H0.Narrow(0, d, 1).Reshape(batch, h), grp)
			} else {
				H = nn.Zeros(nb, h)
			}
			if C0 != nil {
				C = rows(C0.Narrow(0, d, 1).Reshape(batch, h), grp)
			} else {
				C = nn.Zeros(nb, h)
			}
			n := seq
			if lens != nil {
				n = min(lens[grp[0]], seq)
			}
			for step := 0; step < n; step++ {
				t := step
				if reverse {
					t = n - 1 - step
				}
				xt := rows(X.Narrow(0, t, 1).Reshape(batch, isz), grp)
				xw := xt.MatMul(Wd)
				hr := H.MatMul(Rd)
				if B != nil {
					xw, hr = xw.Add(Wb), hr.Add(Rb)
				}
				switch c.op {
				case "RNN":
					H = act(f, xw.Add(hr))
				case "GRU":
					z := act(f, gate(xw, 0).Add(gate(hr, 0)))
					r := act(f, gate(xw, 1).Add(gate(hr, 1)))
					var ht *nn.Tensor
					if c.lbr {
						ht = act(g, gate(xw, 2).Add(r.Mul(gate(hr, 2))))
					} else {
						s := r.Mul(H).MatMul(Rd.Narrow(1, 2*h, h))
						if B != nil {
							s = s.Add(Rb.Narrow(0, 2*h, h))
						}
						ht = act(g, gate(xw, 2).Add(s))
					}
					// (1 - z) * ht + z * H
					H = ht.Sub(z.Mul(ht)).Add(z.Mul(H))
				case "LSTM":
					pi, po, pf := gate(xw, 0).Add(gate(hr, 0)), gate(xw, 1).Add(gate(hr, 1)), gate(xw, 2).Add(gate(hr, 2))
					if P != nil {
						pd := P.Narrow(0, d, 1).Reshape(3 * h)
						pi = pi.Add(pd.Narrow(0, 0, h).Mul(C))
						pf = pf.Add(pd.Narrow(0, 2*h, h).Mul(C))
					}
					i, fg := act(f, pi), act(f, pf)
					cc := act(g, gate(xw, 3).Add(gate(hr, 3)))
					C = fg.Mul(C).Add(i.Mul(cc))
					if P != nil {
						po = po.Add(P.Narrow(0, d, 1).Reshape(3*h).Narrow(0, h, h).Mul(C))
					}
					H = act(f, po).Mul(act(hh, C))
				}
				for k, b := range grp {
					ys[t][d][b] = H.Narrow(0, k, 1)
				}
			}
			for k, b := range grp {
				yh[d][b] = H.Narrow(0, k, 1)
				yc[d][b] = C.Narrow(0, k, 1)
			}
		}
	}
	var flat []*nn.Tensor
	for t := range ys {
		for d := range ys[t] {
			for b, v := range ys[t][d] {
				if v == nil {
					v = nn.Zeros(1, h)
				}
				flat = append(flat, v)
				_ = b
			}
		}
	}
	cat := func(ts [][]*nn.Tensor) []*nn.Tensor {
		var out []*nn.Tensor
		for _, r := range ts {
			out = append(out, r...)
		}
		return out
	}
	dt := x.DType()
	Y := graph.FromTensor(nn.Cat(flat, 0).Reshape(seq, dirs, batch, h)).Cast(dt)
	Yh := graph.FromTensor(nn.Cat(cat(yh), 0).Reshape(dirs, batch, h)).Cast(dt)
	Yc := graph.FromTensor(nn.Cat(cat(yc), 0).Reshape(dirs, batch, h)).Cast(dt)
	return []*graph.Value{Y, Yh, Yc}, nil
}
