package onnximport

import (
	"fmt"
	"math"
	"sort"

	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/graph"
)

// Quantization, integer convolution and matmul, signal windows, Det,
// MaxUnpool, Unique and the preview training domain's optimizers. Det and
// MaxUnpool have a backward.

func init() {
	register(buildQuantize, "QuantizeLinear")
	register(buildDequantize, "DequantizeLinear")
	register(buildDynamicQuantize, "DynamicQuantizeLinear")
	register(buildWindow, "HannWindow", "HammingWindow", "BlackmanWindow")
	register(buildMelWeightMatrix, "MelWeightMatrix")
	register(buildDet, "Det")
	register(buildMaxUnpool, "MaxUnpool")
	register(buildConvInteger, "ConvInteger", "QLinearConv")
	register(buildMatMulInteger, "MatMulInteger", "QLinearMatMul")
	register(buildUnique, "Unique")
	register(buildOptimizer, "Adagrad", "Momentum", "Adam")
}

// trainingDomain holds the optimizers of ONNX's preview training domain.
const trainingDomain = "ai.onnx.preview.training"

func qrange(dt graph.DType) (float64, float64) {
	switch dt {
	case graph.Int8:
		return -128, 127
	case graph.Int32:
		return math.MinInt32, math.MaxInt32
	case graph.Uint16:
		return 0, 65535
	case graph.Int16:
		return -32768, 32767
	}
	return 0, 255
}

// perAxis returns a function giving, for flat element k of shape, the
// index into a per-axis parameter of n elements (0 when n == 1).
func perAxis(shape []int, axis, n int) func(k int) int {
	if n <= 1 || len(shape) == 0 {
		return func(int) int { return 0 }
	}
	inner := numel(shape[axis+1:])
	return func(k int) int { return k / inner % shape[axis] }
}

func buildQuantize(c *nodeCtx) (graph.Kernel, error) {
	axis := c.int("axis", 1)
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x, sc := in[0], in[1].Float64s()
		dt := graph.Uint8
		zp := []float64{0}
		if len(in) > 2 && in[2] != nil {
			dt, zp = in[2].DType(), in[2].Float64s()
		}
		a := 0
		if x.Rank() > 0 {
			var err error
			if a, err = normAxis(axis, x.Rank()); err != nil {
				return nil, err
			}
		}
		at := perAxis(x.Shape(), a, len(sc))
		lo, hi := qrange(dt)
		f := x.Float64s()
		y := make([]float64, len(f))
		for k, e := range f {
			j := at(k)
			y[k] = math.Min(math.Max(math.RoundToEven(e/sc[j])+zp[min(j, len(zp)-1)], lo), hi)
		}
		return one(graph.Make(dt, x.Shape(), y)), nil
	}, nil
}

func buildDequantize(c *nodeCtx) (graph.Kernel, error) {
	axis := c.int("axis", 1)
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x, sc := in[0], in[1].Float64s()
		zp := []float64{0}
		if len(in) > 2 && in[2] != nil {
			zp = in[2].Float64s()
		}
		a := 0
		if x.Rank() > 0 {
			var err error
			if a, err = normAxis(axis, x.Rank()); err != nil {
				return nil, err
			}
		}
		at := perAxis(x.Shape(), a, len(sc))
		f := x.Float64s()
		y := make([]float64, len(f))
		for k, e := range f {
			j := at(k)
			y[k] = float64(float32(e-zp[min(j, len(zp)-1)]) * float32(sc[j]))
		}
		return one(graph.Make(graph.Float32, x.Shape(), y)), nil
	}, nil
}

func buildDynamicQuantize(c *nodeCtx) (graph.Kernel, error) {
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		// float32 arithmetic throughout, as the reference computes it.
		f := in[0].Float64s()
		lo, hi := float32(0), float32(0)
		for _, e := range f {
			lo, hi = min(lo, float32(e)), max(hi, float32(e))
		}
		scale := (hi - lo) / 255
		zp := float32(0)
		if scale != 0 {
			zp = float32(math.Min(math.Max(math.RoundToEven(float64(-lo/scale)), 0), 255))
		}
		y := make([]float64, len(f))
		for k, e := range f {
			q := float64(zp)
			if scale != 0 {
				q = math.RoundToEven(float64(float32(e)/scale)) + float64(zp)
			}
			y[k] = math.Min(math.Max(q, 0), 255)
		}
		return []*graph.Value{graph.Make(graph.Uint8, in[0].Shape(), y), graph.Make(graph.Float32, []int{}, []float64{float64(scale)}),
			graph.Make(graph.Uint8, []int{}, []float64{float64(zp)})}, nil
	}, nil
}

// buildMelWeightMatrix is opset 17's MelWeightMatrix as onnx 1.12's
// reference computes it: num_mel_bins + 2 points equally spaced in mel
// between the edges (the step divides the range by num_mel_bins + 2),
// mapped to DFT bins floor((dft_length + 1) * hz / sample_rate), and a
// triangle per mel bin rising from its left point to its centre and
// falling to its right. Output [dft_length/2 + 1, num_mel_bins].
func buildMelWeightMatrix(c *nodeCtx) (graph.Kernel, error) {
	dt, ok := dtypeOf(onnxDataType(c.int("output_datatype", 1)))
	if !ok {
		return nil, c.unsupported("output_datatype %d", c.int("output_datatype", 1))
	}
	limit := c.opts.MaxElements
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		for k, v := range in[:5] {
			if v == nil || v.Numel() != 1 {
				return nil, fmt.Errorf("input %d is not a scalar", k)
			}
		}
		mels, dft, rate := int(in[0].Int64s()[0]), int(in[1].Int64s()[0]), in[2].Float64s()[0]
		lo, hi := in[3].Float64s()[0], in[4].Float64s()[0]
		bins := dft/2 + 1
		if mels <= 0 || dft <= 0 || !(rate > 0) || mels > limit || bins > limit || bins*mels > limit {
			return nil, fmt.Errorf("num_mel_bins %d, dft_length %d, sample_rate %g", mels, dft, rate)
		}
		toMel := func(hz float64) float64 { return 2595 * math.Log10(1+hz/700) }
		loMel := toMel(lo)
		step := (toMel(hi) - loMel) / float64(mels+2)
		pts := make([]int, mels+2)
		for k := range pts {
			hz := 700 * (math.Pow(10, (float64(k)*step+loMel)/2595) - 1)
			pts[k] = int(math.Floor(float64(dft+1) * hz / rate))
			if pts[k] < 0 || pts[k] >= bins {
				return nil, fmt.Errorf("mel point %d falls in DFT bin %d of %d", k, pts[k], bins)
			}
		}
		y := make([]float64, bins*mels)
		for i := 0; i < mels; i++ {
			l, cen, r := pts[i], pts[i+1], pts[i+2]
			if cen == l {
				y[cen*mels+i] = 1
			} else {
				for j := l; j <= cen; j++ {
					y[j*mels+i] = float64(j-l) / float64(cen-l)
				}
			}
			for j := cen; j < r; j++ {
				y[j*mels+i] = float64(r-j) / float64(r-cen)
			}
		}
		return one(graph.Make(dt, []int{bins, mels}, y)), nil
	}, nil
}

func buildWindow(c *nodeCtx) (graph.Kernel, error) {
	periodic := c.int("periodic", 1) != 0
	dt, ok := dtypeOf(onnxDataType(c.int("output_datatype", 1)))
	if !ok {
		return nil, c.unsupported("output_datatype %d", c.int("output_datatype", 1))
	}
	op := c.n.OpType
	limit := c.opts.MaxElements
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		size := int(in[0].Int64s()[0])
		if size < 0 || size > limit {
			return nil, fmt.Errorf("window size %d", size)
		}
		n := float64(size)
		if !periodic {
			n--
		}
		y := make([]float64, size)
		for k := range y {
			t := 2 * math.Pi * float64(k) / n
			switch op {
			case "HannWindow":
				y[k] = 0.5 - 0.5*math.Cos(t)
			case "HammingWindow":
				y[k] = 25.0/46 - 21.0/46*math.Cos(t)
			default:
				y[k] = 0.42 - 0.5*math.Cos(t) + 0.08*math.Cos(2*t)
			}
		}
		return one(graph.Make(dt, []int{size}, y)), nil
	}, nil
}

// det returns the determinant of the m x m matrix a (row-major), by
// Gaussian elimination with partial pivoting; a is overwritten.
func det(a []float64, m int) float64 {
	d := 1.0
	for col := 0; col < m; col++ {
		p := col
		for i := col + 1; i < m; i++ {
			if math.Abs(a[i*m+col]) > math.Abs(a[p*m+col]) {
				p = i
			}
		}
		if a[p*m+col] == 0 {
			return 0
		}
		if p != col {
			for j := 0; j < m; j++ {
				a[p*m+j], a[col*m+j] = a[col*m+j], a[p*m+j]
			}
			d = -d
		}
		d *= a[col*m+col]
		for i := col + 1; i < m; i++ {
			f := a[i*m+col] / a[col*m+col]
			for j := col; j < m; j++ {
				a[i*m+j] -= f * a[col*m+j]
			}
		}
	}
	return d
}

// cofactors returns the cofactor matrix of the m x m matrix a: d det/d a.
func cofactors(a []float64, m int) []float64 {
	c := make([]float64, m*m)
	minor := make([]float64, (m-1)*(m-1))
	for i := 0; i < m; i++ {
		for j := 0; j < m; j++ {
			k := 0
			for r := 0; r < m; r++ {
				for q := 0; q < m; q++ {
					if r != i && q != j {
						minor[k] = a[r*m+q]
						k++
					}
				}
			}
			v := det(minor, m-1)
			if (i+j)%2 == 1 {
				v = -v
			}
			c[i*m+j] = v
		}
	}
	return c
}

func buildDet(c *nodeCtx) (graph.Kernel, error) {
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x := in[0]
		r := x.Rank()
		if r < 2 || x.Shape()[r-1] != x.Shape()[r-2] {
			return nil, fmt.Errorf("input %v is not a batch of square matrices", x.Shape())
		}
		m := x.Shape()[r-1]
		f := x.Float64s()
		nb := numel(x.Shape()[:r-2])
		y := make([]float64, nb)
		a := make([]float64, m*m)
		for b := 0; b < nb; b++ {
			copy(a, f[b*m*m:(b+1)*m*m])
			y[b] = det(a, m)
		}
		out := graph.Make(x.DType(), x.Shape()[:r-2], y)
		if t := x.Tensor(); t != nil && m <= 32 {
			// d det(A)/dA = cof(A) (det(A) A^-T where A is invertible; the
			// cofactors also where it is not). O(m^5): small matrices only.
			out = graph.FromTensor(nn.Record(out.Tensor(), "Det", []*nn.Tensor{t}, func(g []float32) [][]float32 {
				gx := make([]float32, len(f))
				for b := 0; b < nb; b++ {
					for k, v := range cofactors(f[b*m*m:(b+1)*m*m], m) {
						gx[b*m*m+k] = g[b] * float32(v)
					}
				}
				return [][]float32{gx}
			}))
		}
		return one(out), nil
	}, nil
}

func buildMaxUnpool(c *nodeCtx) (graph.Kernel, error) {
	kattr := c.ints("kernel_shape", nil)
	limit := c.opts.MaxElements
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x, ind := in[0], in[1].Int64s()
		sp := x.Shape()[2:]
		if len(kattr) != len(sp) {
			return nil, fmt.Errorf("kernel %v for input %v", kattr, x.Shape())
		}
		g, err := windowAttrs(c, toInts(kattr), sp, false)
		if err != nil {
			return nil, err
		}
		shape := append([]int{}, x.Shape()[:2]...)
		for d := range sp {
			shape = append(shape, (sp[d]-1)*g.s[d]+g.k[d]-g.pb[d]-g.pe[d])
		}
		if err := checkElems(numelChecked(shape, limit), limit); err != nil {
			return nil, err
		}
		y := make([]float64, numel(shape))
		f := x.Float64s()
		for k, i := range ind {
			if i < 0 || int(i) >= len(y) {
				return nil, fmt.Errorf("index %d out of range", i)
			}
			y[i] = f[k]
		}
		v := graph.Make(x.DType(), shape, y)
		if t := x.Tensor(); t != nil {
			// y[ind[k]] = x[k]: the gradient gathers back, to the last
			// element written where indices repeat.
			last := map[int64]int{}
			for k, i := range ind {
				last[i] = k
			}
			v = graph.FromTensor(nn.Record(v.Tensor(), "MaxUnpool", []*nn.Tensor{t}, func(g []float32) [][]float32 {
				gx := make([]float32, len(f))
				for i, k := range last {
					gx[k] = g[i]
				}
				return [][]float32{gx}
			}))
		}
		if len(in) > 2 && in[2] != nil {
			// The indices address the inferred shape; a given output_shape
			// extends it at the end of each spatial dimension.
			want := in[2].Ints()
			if len(want) != len(shape) {
				return nil, fmt.Errorf("output_shape %v for rank %d", want, len(shape))
			}
			pe := make([]int, len(shape))
			for d := range shape {
				pe[d] = want[d] - shape[d]
			}
			return nil2(padValue(v, make([]int, len(shape)), pe, "constant", 0))
		}
		return one(v), nil
	}, nil
}

// shifted returns v's elements minus a zero point (scalar or per row of
// the given axis).
func shifted(v, zp *graph.Value, axis int) *graph.Value {
	f := append([]float64{}, v.Float64s()...)
	if zp != nil {
		z := zp.Float64s()
		at := perAxis(v.Shape(), axis, len(z))
		for k := range f {
			f[k] -= z[at(k)]
		}
	}
	return graph.Make(graph.Float64, v.Shape(), f)
}

func opt(in []*graph.Value, k int) *graph.Value {
	if k < len(in) {
		return in[k]
	}
	return nil
}

func buildConvInteger(c *nodeCtx) (graph.Kernel, error) {
	q := c.n.OpType == "QLinearConv"
	groups := int(c.int("group", 1))
	kattr := c.ints("kernel_shape", nil)
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		var x, w, b *graph.Value
		if q {
			x, w = shifted(in[0], in[2], 1), shifted(in[3], in[5], 0)
			if b = opt(in, 8); b != nil {
				b = b.Cast(graph.Float64)
			}
		} else {
			x, w = shifted(in[0], opt(in, 2), 1), shifted(in[1], opt(in, 3), 0)
		}
		kernel := w.Shape()[2:]
		if kattr != nil && !sameShape(toInts(kattr), kernel) {
			return nil, fmt.Errorf("kernel_shape %v differs from the weight's %v", kattr, w.Shape())
		}
		g, err := windowAttrs(c, kernel, x.Shape()[2:], false)
		if err != nil {
			return nil, err
		}
		if err := checkWork(x, g, c.opts.MaxElements); err != nil {
			return nil, err
		}
		if x.Rank() < 3 || groups <= 0 || x.Shape()[1] != w.Shape()[1]*groups {
			return nil, fmt.Errorf("input %v and weight %v do not fit", x.Shape(), w.Shape())
		}
		y, err := conv(x, w, b, g, groups)
		if err != nil {
			return nil, err
		}
		if !q {
			return one(y[0].Cast(graph.Int32)), nil
		}
		return one(requantize(y[0], in[1].Float64s()[0]*perFirst(in[4]), in[6], in[7])), nil
	}, nil
}

// perFirst returns the first element (per-tensor scales).
func perFirst(v *graph.Value) float64 { return v.Float64s()[0] }

// requantize maps accumulated products by scale / y_scale plus y_zp,
// saturating to y_zp's type.
func requantize(acc *graph.Value, scale float64, ys, yzp *graph.Value) *graph.Value {
	s := scale / ys.Float64s()[0]
	dt, zp := graph.Uint8, 0.0
	if yzp != nil {
		dt, zp = yzp.DType(), yzp.Float64s()[0]
	}
	lo, hi := qrange(dt)
	f := acc.Float64s()
	y := make([]float64, len(f))
	for k, e := range f {
		y[k] = math.Min(math.Max(math.RoundToEven(e*s)+zp, lo), hi)
	}
	return graph.Make(dt, acc.Shape(), y)
}

func buildMatMulInteger(c *nodeCtx) (graph.Kernel, error) {
	q := c.n.OpType == "QLinearMatMul"
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		var a, b *graph.Value
		if q {
			a, b = shifted(in[0], in[2], 0), shifted(in[3], in[5], 1)
		} else {
			a = shifted(in[0], opt(in, 2), max(in[0].Rank()-2, 0))
			b = shifted(in[1], opt(in, 3), max(in[1].Rank()-1, 0))
		}
		y, err := matmul(a, b)
		if err != nil {
			return nil, err
		}
		if !q {
			return one(y.Cast(graph.Int32)), nil
		}
		return one(requantize(y, perFirst(in[1])*perFirst(in[4]), in[6], opt(in, 7))), nil
	}, nil
}

func buildUnique(c *nodeCtx) (graph.Kernel, error) {
	sorted := c.int("sorted", 1) != 0
	hasAxis := c.has("axis")
	axis := c.int("axis", 0)
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x := in[0]
		if !hasAxis {
			x = x.WithShape([]int{x.Numel()})
		}
		a, err := normAxis(axis, x.Rank())
		if !hasAxis {
			a, err = 0, nil
		}
		if err != nil {
			return nil, err
		}
		moved, rows, rowLen, _ := rowsLast(permute(x, append([]int{a}, without(x.Rank(), a)...)), nil)
		_ = moved
		s := x.Shape()
		n := s[a]
		sl := numel(s) / max(n, 1)
		mv := permute(x, append([]int{a}, without(x.Rank(), a)...))
		f := mv.Float64s()
		_, _ = rows, rowLen
		key := func(i int) []float64 { return f[i*sl : (i+1)*sl] }
		less := func(p, q []float64) int {
			for k := range p {
				if p[k] != q[k] {
					if p[k] < q[k] {
						return -1
					}
					return 1
				}
			}
			return 0
		}
		var firsts []int
		inverse := make([]int64, n)
		for i := 0; i < n; i++ {
			found := -1
			for j, fi := range firsts {
				if less(key(fi), key(i)) == 0 {
					found = j
					break
				}
			}
			if found < 0 {
				firsts = append(firsts, i)
				found = len(firsts) - 1
			}
			inverse[i] = int64(found)
		}
		order := make([]int, len(firsts))
		for k := range order {
			order[k] = k
		}
		if sorted {
			sort.SliceStable(order, func(p, q int) bool { return less(key(firsts[order[p]]), key(firsts[order[q]])) < 0 })
		}
		rank := make([]int64, len(order))
		for newPos, old := range order {
			rank[old] = int64(newPos)
		}
		counts := make([]int64, len(order))
		for i := range inverse {
			inverse[i] = rank[inverse[i]]
			counts[inverse[i]]++
		}
		idx := make([]int64, len(order))
		var gather []int
		for k, old := range order {
			idx[k] = int64(firsts[old])
			for j := 0; j < sl; j++ {
				gather = append(gather, firsts[old]*sl+j)
			}
		}
		ys := append([]int{len(order)}, permShape(s, without(x.Rank(), a))...)
		y := take(mv, gather, ys)
		back := make([]int, x.Rank())
		for d := 1; d < x.Rank(); d++ {
			back[d] = d
		}
		// Move the unique axis back to its place.
		perm := make([]int, x.Rank())
		j := 1
		for d := 0; d < x.Rank(); d++ {
			if d == a {
				perm[d] = 0
			} else {
				perm[d] = j
				j++
			}
		}
		y = permute(y, perm)
		k := len(order)
		return []*graph.Value{y, graph.FromInt64s(graph.Int64, []int{k}, idx), graph.FromInt64s(graph.Int64, []int{n}, inverse),
			graph.FromInt64s(graph.Int64, []int{k}, counts)}, nil
	}, nil
}

func buildOptimizer(c *nodeCtx) (graph.Kernel, error) {
	op := c.n.OpType
	norm := float64(c.float("norm_coefficient", 0))
	decay, eps := float64(c.float("decay_factor", 0)), float64(c.float("epsilon", 0))
	alpha, beta := float64(c.float("alpha", 0.9)), float64(c.float("beta", 0.999))
	mode := c.str("mode", "standard")
	normPost := float64(c.float("norm_coefficient_post", 0))
	if op == "Adam" && !c.has("epsilon") {
		eps = 1e-6
	}
	if op == "Momentum" {
		alpha, beta = float64(c.float("alpha", 0)), float64(c.float("beta", 0))
	}
	groups := map[string]int{"Adagrad": 3, "Momentum": 3, "Adam": 4}[op]
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		if (len(in)-2)%groups != 0 {
			return nil, fmt.Errorf("%d inputs", len(in))
		}
		n := (len(in) - 2) / groups
		r, t := in[0].Float64s()[0], float64(in[1].Int64s()[0])
		outs := make([]*graph.Value, (groups-1)*n)
		for i := 0; i < n; i++ {
			x, g := in[2+i], in[2+n+i]
			xf, gf := x.Float64s(), g.Float64s()
			s1 := in[2+2*n+i].Float64s()
			nx, n1 := make([]float64, len(xf)), make([]float64, len(xf))
			var n2 []float64
			switch op {
			case "Adagrad":
				rr := r / (1 + t*decay)
				for k := range xf {
					gr := norm*xf[k] + gf[k]
					n1[k] = s1[k] + gr*gr
					nx[k] = xf[k] - rr*gr/(math.Sqrt(n1[k])+eps)
				}
			case "Momentum":
				b := beta
				if t == 0 {
					b = 1
				}
				for k := range xf {
					gr := norm*xf[k] + gf[k]
					n1[k] = alpha*s1[k] + b*gr
					if mode == "nesterov" {
						nx[k] = xf[k] - r*(gr+alpha*n1[k])
					} else {
						nx[k] = xf[k] - r*n1[k]
					}
				}
			case "Adam":
				s2 := in[2+3*n+i].Float64s()
				n2 = make([]float64, len(xf))
				rr := r
				if t > 0 {
					rr = r * math.Sqrt(1-math.Pow(beta, t)) / (1 - math.Pow(alpha, t))
				}
				for k := range xf {
					gr := norm*xf[k] + gf[k]
					n1[k] = alpha*s1[k] + (1-alpha)*gr
					n2[k] = beta*s2[k] + (1-beta)*gr*gr
					nx[k] = (1 - normPost) * (xf[k] - rr*n1[k]/(math.Sqrt(n2[k])+eps))
				}
			}
			outs[i] = graph.Make(x.DType(), x.Shape(), nx)
			outs[n+i] = graph.Make(x.DType(), x.Shape(), n1)
			if n2 != nil {
				outs[2*n+i] = graph.Make(x.DType(), x.Shape(), n2)
			}
		}
		return outs, nil
	}, nil
}

func nil2(v *graph.Value, err error) ([]*graph.Value, error) {
	if err != nil {
		return nil, err
	}
	return one(v), nil
}
