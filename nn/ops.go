package nn

import (
	"fmt"
	"github.com/ckptkit/ckpt/nn/internal/vec"

	"github.com/ckptkit/ckpt/nn/gemm"
)

// bcastPlan describes an elementwise loop over out's elements with the
// matching offsets into two operands whose strides may be 0 (broadcast).
// Dimensions are coalesced so the innermost run is as long as possible.
type bcastPlan struct {
	size, sa, sb []int // outer-to-inner, after coalescing
}

func broadcastShape(op string, a, b []int) []int {
	n := max(len(a), len(b))
	out := make([]int, n)
	for i := range n {
		da, db := 1, 1
		if j := len(a) - n + i; j >= 0 {
			da = a[j]
		}
		if j := len(b) - n + i; j >= 0 {
			db = b[j]
		}
		switch {
		case da == db:
			out[i] = da
		case da == 1:
			out[i] = db
		case db == 1:
			out[i] = da
		default:
			shapeErr(op, "shapes cannot be broadcast", a, b)
		}
	}
	return out
}

// stridesFor returns the strides of a contiguous tensor of shape s viewed as
// the broadcast shape out (0 where s is broadcast).
func stridesFor(s, out []int) []int {
	st := make([]int, len(out))
	acc := 1
	for i := len(out) - 1; i >= 0; i-- {
		j := len(s) - len(out) + i
		if j < 0 || s[j] == 1 {
			st[i] = 0
		} else {
			st[i] = acc
		}
		if j >= 0 {
			acc *= s[j]
		}
	}
	return st
}

func makePlan(out, sa, sb []int) bcastPlan {
	var p bcastPlan
	for i := range out {
		if out[i] == 1 {
			continue
		}
		if k := len(p.size) - 1; k >= 0 && p.sa[k] == sa[i]*out[i] && p.sb[k] == sb[i]*out[i] {
			p.size[k] *= out[i]
			p.sa[k], p.sb[k] = sa[i], sb[i]
			continue
		}
		p.size = append(p.size, out[i])
		p.sa = append(p.sa, sa[i])
		p.sb = append(p.sb, sb[i])
	}
	if len(p.size) == 0 {
		p.size, p.sa, p.sb = []int{1}, []int{0}, []int{0}
	}
	return p
}

// runs calls f for every innermost run: output offset o, operand offsets ia
// and ib, run length n and operand strides along the run.
func (p bcastPlan) runs(f func(o, ia, ib, n, sa, sb int)) {
	d := len(p.size) - 1
	n, sa, sb := p.size[d], p.sa[d], p.sb[d]
	outer := 1
	for _, s := range p.size[:d] {
		outer *= s
	}
	idx := make([]int, d)
	ia, ib := 0, 0
	for r := range outer {
		f(r*n, ia, ib, n, sa, sb)
		for k := d - 1; k >= 0; k-- {
			idx[k]++
			ia += p.sa[k]
			ib += p.sb[k]
			if idx[k] < p.size[k] {
				break
			}
			ia -= p.sa[k] * p.size[k]
			ib -= p.sb[k] * p.size[k]
			idx[k] = 0
		}
	}
}

type binKind int

const (
	binAdd binKind = iota
	binSub
	binMul
	binDiv
)

var binNames = [...]string{"AddBackward", "SubBackward", "MulBackward", "DivBackward"}

func binop(kind binKind, a, b *Tensor) *Tensor {
	if sameShape(a.shape, b.shape) {
		out := newResult(cloneInts(a.shape), a, b)
		x, y, z := a.data, b.data[:len(a.data)], out.data[:len(a.data)]
		if len(z) < 4*parallelMin {
			binSame(kind, x, y, z)
		} else {
			parallelFor(len(z), len(z), func(lo, hi int) { binSame(kind, x[lo:hi], y[lo:hi], z[lo:hi]) })
		}
		if !needGrad(a, b) {
			return out
		}
		return record(out, binNames[kind], []*Tensor{a, b}, func(g []float32) [][]float32 {
			var ga, gb []float32
			switch kind {
			case binAdd:
				if a.requiresGrad {
					ga = g
				}
				if b.requiresGrad {
					gb = g
				}
			case binSub:
				if a.requiresGrad {
					ga = g
				}
				if b.requiresGrad {
					gb = gradBuf(len(g), false)
					for i, v := range g {
						gb[i] = -v
					}
				}
			case binMul:
				if a.requiresGrad {
					ga = gradBuf(len(g), false)
					for i, v := range g {
						ga[i] = v * y[i]
					}
				}
				if b.requiresGrad {
					gb = gradBuf(len(g), false)
					for i, v := range g {
						gb[i] = v * x[i]
					}
				}
			case binDiv:
				if a.requiresGrad {
					ga = gradBuf(len(g), false)
					for i, v := range g {
						ga[i] = v / y[i]
					}
				}
				if b.requiresGrad {
					gb = gradBuf(len(g), false)
					for i, v := range g {
						gb[i] = -v * x[i] / (y[i] * y[i])
					}
				}
			}
			return [][]float32{ga, gb}
		})
	}
	os := broadcastShape(binNames[kind][:3], a.shape, b.shape)
	plan := makePlan(os, stridesFor(a.shape, os), stridesFor(b.shape, os))
	if kind == binMul {
		if out := mulPlanes(a, b, os, plan); out != nil {
			return out
		}
	}
	out := newResult(os, a, b)
	x, y, z := a.data, b.data, out.data
	plan.runs(func(o, ia, ib, n, sa, sb int) {
		zz := z[o : o+n]
		switch kind {
		case binAdd:
			for j := range zz {
				zz[j] = x[ia+j*sa] + y[ib+j*sb]
			}
		case binSub:
			for j := range zz {
				zz[j] = x[ia+j*sa] - y[ib+j*sb]
			}
		case binMul:
			for j := range zz {
				zz[j] = x[ia+j*sa] * y[ib+j*sb]
			}
		case binDiv:
			for j := range zz {
				zz[j] = x[ia+j*sa] / y[ib+j*sb]
			}
		}
	})
	if !needGrad(a, b) {
		return out
	}
	return record(out, binNames[kind], []*Tensor{a, b}, func(g []float32) [][]float32 {
		var ga, gb []float32
		if a.requiresGrad {
			ga = gradBuf(len(x), true)
		}
		if b.requiresGrad {
			gb = gradBuf(len(y), true)
		}
		plan.runs(func(o, ia, ib, n, sa, sb int) {
			for j := range n {
				v := g[o+j]
				xa, yb := ia+j*sa, ib+j*sb
				switch kind {
				case binAdd:
					if ga != nil {
						ga[xa] += v
					}
					if gb != nil {
						gb[yb] += v
					}
				case binSub:
					if ga != nil {
						ga[xa] += v
					}
					if gb != nil {
						gb[yb] -= v
					}
				case binMul:
					if ga != nil {
						ga[xa] += v * y[yb]
					}
					if gb != nil {
						gb[yb] += v * x[xa]
					}
				case binDiv:
					if ga != nil {
						ga[xa] += v / y[yb]
					}
					if gb != nil {
						gb[yb] -= v * x[xa] / (y[yb] * y[yb])
					}
				}
			}
		})
		return [][]float32{ga, gb}
	})
}

// mulPlanes is a*b for the product of a tensor by one value per plane of
// it, as a ConvNeXt layer scale ([C,1,1] times [N,C,H,W]) or a
// squeeze-and-excitation ([N,C,1,1] times [N,C,H,W]) is: one operand has
// the result's shape, and the other is constant along each of the plan's
// innermost runs. It runs the planes on every thread, and so does the
// backward pass, where the per-plane values' gradient is a float64 dot
// product per plane, added up in plane order. It returns nil for any other
// product.
func mulPlanes(a, b *Tensor, shape []int, plan bcastPlan) *Tensor {
	d := len(plan.size) - 1
	if d < 0 {
		return nil
	}
	full, scal := b, a // the operand of the result's shape, the per-plane one
	sf, ss := plan.sb, plan.sa
	if numel(shape) == len(a.data) {
		full, scal, sf, ss = a, b, plan.sa, plan.sb
	}
	n := plan.size[d]
	if len(full.data) != numel(shape) || sf[d] != 1 || ss[d] != 0 || n < 16 {
		return nil
	}
	// The runs, in the order plan.runs visits them: run r covers
	// result[r*n:(r+1)*n] and scal.data[idx[r]].
	idx := make([]int, 0, len(full.data)/n)
	plan.runs(func(o, ia, ib, _, _, _ int) {
		if full == a {
			idx = append(idx, ib)
		} else {
			idx = append(idx, ia)
		}
	})
	out := newResultData(cloneInts(shape), false, a, b)
	fd, sd, z := full.data, scal.data, out.data
	parallelFor(len(idx), len(z), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			s, src, dst := sd[idx[r]], fd[r*n:(r+1)*n], z[r*n:(r+1)*n]
			for j, v := range src {
				dst[j] = s * v
			}
		}
	})
	if !needGrad(a, b) {
		return out
	}
	return record(out, binNames[binMul], []*Tensor{a, b}, func(g []float32) [][]float32 {
		var gf, gs []float32
		if full.requiresGrad {
			gf = gradBuf(len(fd), false)
		}
		var dots []float64
		if scal.requiresGrad {
			dots = make([]float64, len(idx))
		}
		parallelFor(len(idx), 2*len(g), func(lo, hi int) {
			for r := lo; r < hi; r++ {
				gr := g[r*n : (r+1)*n]
				if gf != nil {
					s, dst := sd[idx[r]], gf[r*n:(r+1)*n]
					for j, v := range gr {
						dst[j] = v * s
					}
				}
				if dots != nil {
					_, dots[r] = vec.SumDotDevF64(gr, fd[r*n:(r+1)*n], 0)
				}
			}
		})
		if dots != nil {
			acc := make([]float64, len(sd))
			for r, v := range dots {
				acc[idx[r]] += v
			}
			gs = toF32(acc)
		}
		if full == a {
			return [][]float32{gf, gs}
		}
		return [][]float32{gs, gf}
	})
}

// binSame is the elementwise loop of binop for operands of equal shape.
func binSame(kind binKind, x, y, z []float32) {
	y, z = y[:len(x)], z[:len(x)]
	switch kind {
	case binAdd:
		for i := range x {
			z[i] = x[i] + y[i]
		}
	case binSub:
		for i := range x {
			z[i] = x[i] - y[i]
		}
	case binMul:
		for i := range x {
			z[i] = x[i] * y[i]
		}
	case binDiv:
		for i := range x {
			z[i] = x[i] / y[i]
		}
	}
}

// Add returns t + u with NumPy/torch broadcasting.
func (t *Tensor) Add(u *Tensor) *Tensor { return binop(binAdd, t, u) }

// Sub returns t - u with broadcasting.
func (t *Tensor) Sub(u *Tensor) *Tensor { return binop(binSub, t, u) }

// Mul returns the elementwise product t * u with broadcasting.
func (t *Tensor) Mul(u *Tensor) *Tensor { return binop(binMul, t, u) }

// Div returns the elementwise quotient t / u with broadcasting.
func (t *Tensor) Div(u *Tensor) *Tensor { return binop(binDiv, t, u) }

// unaryOp applies f elementwise; df returns dy/dx from x and y = f(x).
func unaryOp(t *Tensor, name string, f func(x float32) float32, df func(x, y float32) float32) *Tensor {
	out := newResult(cloneInts(t.shape), t)
	for i, v := range t.data {
		out.data[i] = f(v)
	}
	y := out.data
	return record(out, name, []*Tensor{t}, func(g []float32) [][]float32 {
		gx := gradBuf(len(g), false)
		for i, v := range g {
			gx[i] = v * df(t.data[i], y[i])
		}
		return [][]float32{gx}
	})
}

// AddScalar returns t + s.
func (t *Tensor) AddScalar(s float32) *Tensor {
	return unaryOp(t, "AddBackward", func(x float32) float32 { return x + s }, func(x, y float32) float32 { return 1 })
}

// MulScalar returns t * s.
func (t *Tensor) MulScalar(s float32) *Tensor {
	return unaryOp(t, "MulBackward", func(x float32) float32 { return x * s }, func(x, y float32) float32 { return s })
}

// Neg returns -t.
func (t *Tensor) Neg() *Tensor { return t.MulScalar(-1) }

// Exp returns e^t elementwise.
func (t *Tensor) Exp() *Tensor {
	return unaryOp(t, "ExpBackward", exp32, func(x, y float32) float32 { return y })
}

// Log returns the natural logarithm of t elementwise.
func (t *Tensor) Log() *Tensor {
	return unaryOp(t, "LogBackward", log32, func(x, y float32) float32 { return 1 / x })
}

// Sqrt returns the square root of t elementwise.
func (t *Tensor) Sqrt() *Tensor {
	return unaryOp(t, "SqrtBackward", sqrt32, func(x, y float32) float32 { return 0.5 / y })
}

// Square returns t*t elementwise.
func (t *Tensor) Square() *Tensor {
	return unaryOp(t, "PowBackward", func(x float32) float32 { return x * x }, func(x, y float32) float32 { return 2 * x })
}

// Clamp limits t to [lo, hi]; the gradient is 1 strictly inside and 0 outside.
func (t *Tensor) Clamp(lo, hi float32) *Tensor {
	return unaryOp(t, "ClampBackward", func(x float32) float32 { return min(max(x, lo), hi) },
		func(x, y float32) float32 {
			if x >= lo && x <= hi {
				return 1
			}
			return 0
		})
}

// MatMul returns the matrix product of t [..., m, k] and u [k, n] or
// [..., k, n]. When both have leading batch dimensions they must be equal.
func (t *Tensor) MatMul(u *Tensor) *Tensor {
	if t.Dim() < 2 || u.Dim() < 2 {
		shapeErr("MatMul", "operands need at least 2 dimensions", t.shape, u.shape)
	}
	m, k := t.shape[t.Dim()-2], t.shape[t.Dim()-1]
	k2, n := u.shape[u.Dim()-2], u.shape[u.Dim()-1]
	if k != k2 {
		shapeErr("MatMul", "inner dimensions differ", t.shape, u.shape)
	}
	batch, mm := 1, m
	var outShape []int
	if u.Dim() == 2 {
		// Fold t's batch dimensions into the rows.
		mm = len(t.data) / max(k, 1)
		if k == 0 {
			mm = numel(t.shape[:t.Dim()-1])
		}
		outShape = append(append([]int(nil), t.shape[:t.Dim()-1]...), n)
	} else {
		if !sameShape(t.shape[:t.Dim()-2], u.shape[:u.Dim()-2]) {
			shapeErr("MatMul", "batch dimensions differ", t.shape, u.shape)
		}
		batch = numel(t.shape[:t.Dim()-2])
		outShape = append(append([]int(nil), t.shape[:t.Dim()-1]...), n)
	}
	out := newResult(outShape, t, u)
	a, b, c := t.data, u.data, out.data
	bStride := k * n
	if u.Dim() == 2 {
		bStride = 0
	}
	for i := range batch {
		if mm > 0 && n > 0 {
			gemm.Sgemm(false, false, mm, n, k, 1, a[i*mm*k:], max(k, 1), b[i*bStride:], max(n, 1), 0, c[i*mm*n:], max(n, 1))
		}
	}
	if !needGrad(t, u) {
		return out
	}
	return record(out, "MmBackward", []*Tensor{t, u}, func(g []float32) [][]float32 {
		var ga, gb []float32
		if t.requiresGrad {
			ga = make([]float32, len(a))
			for i := range batch {
				if mm > 0 && k > 0 {
					// dA = dC · Bᵀ
					gemm.Sgemm(false, true, mm, k, n, 1, g[i*mm*n:], max(n, 1), b[i*bStride:], max(n, 1), 0, ga[i*mm*k:], k)
				}
			}
		}
		if u.requiresGrad {
			gb = make([]float32, len(b))
			for i := range batch {
				if k > 0 && n > 0 {
					// dB = Aᵀ · dC, accumulated over the batch when B is shared.
					beta := float32(0)
					if bStride == 0 && i > 0 {
						beta = 1
					}
					gemm.Sgemm(true, false, k, n, mm, 1, a[i*mm*k:], k, g[i*mm*n:], n, beta, gb[i*bStride:], n)
				}
			}
		}
		return [][]float32{ga, gb}
	})
}

// Reshape returns a tensor with t's data and a new shape; one dimension may be
// -1 and is inferred. The result shares data with t (a view).
func (t *Tensor) Reshape(shape ...int) *Tensor {
	s := append([]int(nil), shape...)
	infer, known := -1, 1
	for i, d := range s {
		if d == -1 {
			if infer >= 0 {
				shapeErr("Reshape", "only one dimension can be inferred", t.shape, cloneInts(shape))
			}
			infer = i
		} else if d < 0 {
			shapeErr("Reshape", "negative dimension", t.shape, cloneInts(shape))
		} else {
			known *= d
		}
	}
	if infer >= 0 {
		if known == 0 || len(t.data)%known != 0 {
			shapeErr("Reshape", "shape is invalid for the input size", t.shape, cloneInts(shape))
		}
		s[infer] = len(t.data) / known
	}
	if numel(s) != len(t.data) {
		shapeErr("Reshape", "shape is invalid for the input size", t.shape, cloneInts(shape))
	}
	out := &Tensor{data: t.data, shape: s, arena: t.arena}
	if !needGrad(t) {
		return out
	}
	return record(out, "ViewBackward", []*Tensor{t}, func(g []float32) [][]float32 { return [][]float32{g} })
}

// View is Reshape: every tensor here is contiguous, so a view always exists.
func (t *Tensor) View(shape ...int) *Tensor { return t.Reshape(shape...) }

// Flatten merges dimensions start..end (inclusive, negative counts from the
// end) into one, as torch.flatten.
func (t *Tensor) Flatten(start, end int) *Tensor {
	if t.Dim() == 0 {
		return t.Reshape(1)
	}
	start = normDim(start, t.Dim(), "Flatten")
	end = normDim(end, t.Dim(), "Flatten")
	if start > end {
		shapeErr("Flatten", "start_dim after end_dim", t.shape)
	}
	s := append([]int(nil), t.shape[:start]...)
	s = append(s, numel(t.shape[start:end+1]))
	s = append(s, t.shape[end+1:]...)
	return t.Reshape(s...)
}

// Permute returns t with its dimensions reordered: dimension i of the result
// is dimension dims[i] of t. The result is a contiguous copy.
func (t *Tensor) Permute(dims ...int) *Tensor {
	n := t.Dim()
	if len(dims) != n {
		shapeErr("Permute", fmt.Sprintf("%d dimensions given", len(dims)), t.shape)
	}
	seen := make([]bool, n)
	perm := make([]int, n)
	for i, d := range dims {
		d = normDim(d, n, "Permute")
		if seen[d] {
			shapeErr("Permute", "repeated dimension", t.shape, cloneInts(dims))
		}
		seen[d] = true
		perm[i] = d
	}
	shape := make([]int, n)
	for i, d := range perm {
		shape[i] = t.shape[d]
	}
	out := newResultData(shape, false, t) // permuteInto writes every element
	permuteInto(out.data, t.data, t.shape, perm)
	inv := make([]int, n)
	for i, d := range perm {
		inv[d] = i
	}
	outShape := out.shape
	if !needGrad(t) {
		return out
	}
	return record(out, "PermuteBackward", []*Tensor{t}, func(g []float32) [][]float32 {
		gx := gradBuf(len(g), false) // permuteInto writes every element
		permuteInto(gx, g, outShape, inv)
		return [][]float32{gx}
	})
}

// permuteInto writes src (shape) permuted by perm into dst.
func permuteInto(dst, src []float32, shape, perm []int) {
	n := len(shape)
	if n == 0 || len(src) == 0 {
		copy(dst, src)
		return
	}
	inStride := make([]int, n)
	acc := 1
	for d := n - 1; d >= 0; d-- {
		inStride[d] = acc
		acc *= shape[d]
	}
	outShape := make([]int, n)
	st := make([]int, n) // input stride for each output dimension
	for i, d := range perm {
		outShape[i] = shape[d]
		st[i] = inStride[d]
	}
	p := makePlan(outShape, st, st)
	if transposeBatched(dst, src, p) {
		return
	}
	p.runs(func(o, ia, _, cnt, sa, _ int) {
		dd := dst[o : o+cnt]
		for j := range dd {
			dd[j] = src[ia+j*sa]
		}
	})
}

// transposeBatched does permuteInto's copy when the permutation, its
// dimensions coalesced into plan p, is a batch of matrix transposes (as
// NCHW <-> NHWC is: [N, C, HW] to [N, HW, C]), reporting whether it did:
// in tiles, so that both sides are read and written a cache line at a time
// instead of one side striding a whole plane per element, and in parallel
// over the batch and the tile rows.
func transposeBatched(dst, src []float32, p bcastPlan) bool {
	d := len(p.size)
	if d < 2 || d > 3 {
		return false
	}
	batch := 1
	if d == 3 {
		batch = p.size[0]
	}
	cols, rows := p.size[d-2], p.size[d-1] // dst is [batch][cols][rows]
	if p.sa[d-2] != 1 || p.sa[d-1] != cols || (d == 3 && p.sa[0] != rows*cols) || rows < 8 || cols < 8 {
		return false
	}
	const tile = 32
	ct := (cols + tile - 1) / tile
	parallelFor(batch*ct, len(dst), func(lo, hi int) {
		for bt := lo; bt < hi; bt++ {
			b, c0 := bt/ct, bt%ct*tile
			c1 := min(c0+tile, cols)
			s, o := src[b*rows*cols:(b+1)*rows*cols], dst[b*rows*cols:(b+1)*rows*cols]
			for r0 := 0; r0 < rows; r0 += tile {
				r1 := min(r0+tile, rows)
				for c := c0; c < c1; c++ {
					od := o[c*rows+r0 : c*rows+r1]
					for k := range od {
						od[k] = s[(r0+k)*cols+c]
					}
				}
			}
		}
	})
	return true
}

// Transpose swaps dimensions d0 and d1 (a contiguous copy).
func (t *Tensor) Transpose(d0, d1 int) *Tensor {
	perm := make([]int, t.Dim())
	for i := range perm {
		perm[i] = i
	}
	d0, d1 = normDim(d0, t.Dim(), "Transpose"), normDim(d1, t.Dim(), "Transpose")
	perm[d0], perm[d1] = perm[d1], perm[d0]
	return t.Permute(perm...)
}

// reducePlan maps every element of a tensor of shape s to its slot in the
// reduction over dims (keepdim shape returned too).
func reducePlan(op string, s []int, dims []int) (bcastPlan, []int, []int, int) {
	red := make([]bool, len(s))
	if len(dims) == 0 {
		for i := range red {
			red[i] = true
		}
	}
	for _, d := range dims {
		red[normDim(d, len(s), op)] = true
	}
	keep := make([]int, len(s))
	var squeezed []int
	count := 1
	for i, d := range s {
		if red[i] {
			keep[i] = 1
			count *= d
		} else {
			keep[i] = d
			squeezed = append(squeezed, d)
		}
	}
	inSt := stridesFor(s, s)
	for i := range inSt { // full strides even for size-1 dims
		inSt[i] = numel(s[i+1:])
	}
	outSt := stridesFor(keep, s)
	return makePlan(s, inSt, outSt), keep, squeezed, count
}

func (t *Tensor) reduce(op string, dims []int, keepdim bool, scale float32) *Tensor {
	plan, keep, squeezed, _ := reducePlan(op, t.shape, dims)
	shape := squeezed
	if keepdim {
		shape = keep
	}
	if shape == nil {
		shape = []int{}
	}
	acc := make([]float64, numel(keep))
	x := t.data
	plan.runs(func(_, ia, ib, n, sa, sb int) {
		if sb == 0 {
			s := 0.0
			for j := range n {
				s += float64(x[ia+j*sa])
			}
			acc[ib] += s
			return
		}
		for j := range n {
			acc[ib+j*sb] += float64(x[ia+j*sa])
		}
	})
	out := newResultData(shape, false, t)
	for i, v := range acc {
		out.data[i] = float32(v * float64(scale))
	}
	return record(out, op+"Backward", []*Tensor{t}, func(g []float32) [][]float32 {
		gx := gradBuf(len(x), true)
		plan.runs(func(_, ia, ib, n, sa, sb int) {
			for j := range n {
				gx[ia+j*sa] = g[ib+j*sb] * scale
			}
		})
		return [][]float32{gx}
	})
}

// Sum returns the sum of t over dims (all dimensions when none are given),
// keeping reduced dimensions as size 1 when keepdim. Sums accumulate in
// float64.
func (t *Tensor) Sum(keepdim bool, dims ...int) *Tensor {
	return t.reduce("Sum", dims, keepdim, 1)
}

// Mean returns the mean of t over dims (all dimensions when none are given).
func (t *Tensor) Mean(keepdim bool, dims ...int) *Tensor {
	_, _, _, count := reducePlan("Mean", t.shape, dims)
	return t.reduce("Mean", dims, keepdim, 1/float32(count))
}

// Cat concatenates tensors along dim; all other dimensions must agree.
func Cat(ts []*Tensor, dim int) *Tensor {
	if len(ts) == 0 {
		panic(&ShapeError{Op: "Cat", Msg: "no tensors"})
	}
	ref := ts[0].shape
	dim = normDim(dim, len(ref), "Cat")
	total := 0
	for _, u := range ts {
		if len(u.shape) != len(ref) {
			shapeErr("Cat", "dimension counts differ", ref, u.shape)
		}
		for i := range ref {
			if i != dim && u.shape[i] != ref[i] {
				shapeErr("Cat", "sizes differ outside the concatenated dimension", ref, u.shape)
			}
		}
		total += u.shape[dim]
	}
	shape := append([]int(nil), ref...)
	shape[dim] = total
	outer := numel(ref[:dim])
	inner := numel(ref[dim+1:])
	out := newResult(shape, ts...)
	row := total * inner
	off := 0
	for _, u := range ts {
		w := u.shape[dim] * inner
		for o := range outer {
			copy(out.data[o*row+off:o*row+off+w], u.data[o*w:(o+1)*w])
		}
		off += w
	}
	return record(out, "CatBackward", ts, func(g []float32) [][]float32 {
		res := make([][]float32, len(ts))
		off := 0
		for i, u := range ts {
			w := u.shape[dim] * inner
			if u.requiresGrad {
				gi := make([]float32, len(u.data))
				for o := range outer {
					copy(gi[o*w:(o+1)*w], g[o*row+off:o*row+off+w])
				}
				res[i] = gi
			}
			off += w
		}
		return res
	})
}

// Narrow returns the slice start:start+length of t along dim (a copy).
func (t *Tensor) Narrow(dim, start, length int) *Tensor {
	dim = normDim(dim, t.Dim(), "Narrow")
	if start < 0 || length < 0 || start+length > t.shape[dim] {
		shapeErr("Narrow", fmt.Sprintf("range %d:%d out of bounds in dimension %d", start, start+length, dim), t.shape)
	}
	outer := numel(t.shape[:dim])
	inner := numel(t.shape[dim+1:])
	shape := append([]int(nil), t.shape...)
	shape[dim] = length
	out := newResult(shape, t)
	row, w, off := t.shape[dim]*inner, length*inner, start*inner
	for o := range outer {
		copy(out.data[o*w:(o+1)*w], t.data[o*row+off:o*row+off+w])
	}
	if !needGrad(t) {
		return out
	}
	return record(out, "NarrowBackward", []*Tensor{t}, func(g []float32) [][]float32 {
		gx := gradBuf(len(t.data), true)
		for o := range outer {
			copy(gx[o*row+off:o*row+off+w], g[o*w:(o+1)*w])
		}
		return [][]float32{gx}
	})
}

// Chunk splits t into n pieces along dim, as torch.chunk (each piece has
// ceil(size/n) entries, the last may be smaller).
func (t *Tensor) Chunk(n, dim int) []*Tensor {
	dim = normDim(dim, t.Dim(), "Chunk")
	size := t.shape[dim]
	step := (size + n - 1) / n
	var out []*Tensor
	for s := 0; s < size; s += step {
		out = append(out, t.Narrow(dim, s, min(step, size-s)))
	}
	return out
}

// ChannelShuffle permutes the channels of t [N, C, ...] as
// torch.nn.ChannelShuffle(groups): view as [N, g, C/g, ...], swap the two
// group dimensions, flatten back.
func (t *Tensor) ChannelShuffle(groups int) *Tensor {
	if t.Dim() < 2 || groups <= 0 || t.shape[1]%groups != 0 {
		shapeErr("ChannelShuffle", fmt.Sprintf("channels not divisible by %d groups", groups), t.shape)
	}
	n, c := t.shape[0], t.shape[1]
	rest := numel(t.shape[2:])
	return t.Reshape(n, groups, c/groups, rest).Transpose(1, 2).Reshape(t.shape...)
}

// StochasticDepth is torchvision.ops.stochastic_depth: in training, with
// probability p it zeroes an entire row (mode "row": each sample of the batch
// independently) or the whole input (mode "batch"), and scales survivors by
// 1/(1-p). Outside training, or with p == 0, it returns t unchanged. The
// random draws come from the package generator (see [ManualSeed]).
func (t *Tensor) StochasticDepth(p float64, mode string, training bool) *Tensor {
	if p < 0 || p > 1 {
		panic(fmt.Sprintf("nn: StochasticDepth: drop probability has to be between 0 and 1, but got %v", p))
	}
	if mode != "row" && mode != "batch" {
		panic(fmt.Sprintf("nn: StochasticDepth: mode has to be either 'batch' or 'row', but got %s", mode))
	}
	if !training || p == 0 {
		return t
	}
	shape := make([]int, t.Dim())
	for i := range shape {
		shape[i] = 1
	}
	if mode == "row" && t.Dim() > 0 {
		shape[0] = t.shape[0]
	}
	survival := 1 - p
	noise := Zeros(shape...)
	for i := range noise.data {
		if Rand() < survival {
			noise.data[i] = 1
			if survival > 0 {
				noise.data[i] = float32(1 / survival)
			}
		}
	}
	return t.Mul(noise)
}
