package nn

import (
	"fmt"
	"math"
)

// This file holds the tensor rearrangements of the vision transformers:
// roll, constant padding, row gathers by an integer index, L2
// normalisation, and Swin's window partition and reverse.

// Roll shifts t cyclically along dims by shifts (torch.roll with as many
// shifts as dims): element i of a rolled dimension of size n moves to
// (i+shift) mod n. The backward rolls the gradient back.
func (t *Tensor) Roll(shifts, dims []int) *Tensor {
	if len(shifts) != len(dims) {
		shapeErr("Roll", fmt.Sprintf("%d shifts for %d dims", len(shifts), len(dims)), t.shape)
	}
	sh := make([]int, t.Dim())
	for i, d := range dims {
		d = normDim(d, t.Dim(), "Roll")
		if n := t.shape[d]; n > 0 {
			sh[d] = ((sh[d]+shifts[i])%n + n) % n
		}
	}
	out := newResult(cloneInts(t.shape), t)
	rollInto(out.data, t.data, t.shape, sh, false)
	if !needGrad(t) {
		return out
	}
	shape := cloneInts(t.shape)
	return record(out, "RollBackward", []*Tensor{t}, func(g []float32) [][]float32 {
		gx := gradBuf(len(g), true)
		rollInto(gx, g, shape, sh, true)
		return [][]float32{gx}
	})
}

// rollInto writes src rolled by sh (per dimension, in [0, size)) into dst;
// back rolls the other way (dst is the source of the forward roll).
func rollInto(dst, src []float32, shape, sh []int, back bool) {
	n := len(shape)
	if len(src) == 0 {
		return
	}
	if n == 0 {
		copy(dst, src)
		return
	}
	// The last dimension moves as two contiguous runs per row.
	last := shape[n-1]
	rows := len(src) / last
	idx := make([]int, n-1)
	s := sh[n-1]
	for r := range rows {
		// Destination row of source row r.
		o := 0
		for d := 0; d < n-1; d++ {
			i := idx[d] + sh[d]
			if i >= shape[d] {
				i -= shape[d]
			}
			o = o*shape[d] + i
		}
		a, b := src[r*last:(r+1)*last], dst[o*last:(o+1)*last]
		if back {
			a, b = src[o*last:(o+1)*last], dst[r*last:(r+1)*last]
			// b[j] = a[(j+s) mod last]
			copy(b, a[s:])
			copy(b[last-s:], a[:s])
		} else {
			// b[(j+s) mod last] = a[j]
			copy(b[s:], a[:last-s])
			copy(b[:s], a[last-s:])
		}
		for d := n - 2; d >= 0; d-- {
			idx[d]++
			if idx[d] < shape[d] {
				break
			}
			idx[d] = 0
		}
	}
}

// Pad returns t padded with zeros as torch.nn.functional.pad(t, pads) in
// "constant" mode: pads holds (before, after) pairs starting from the last
// dimension. Pads must be non-negative.
func (t *Tensor) Pad(pads ...int) *Tensor {
	if len(pads)%2 != 0 || len(pads)/2 > t.Dim() {
		shapeErr("Pad", fmt.Sprintf("%d pad values", len(pads)), t.shape)
	}
	n := t.Dim()
	before := make([]int, n)
	shape := cloneInts(t.shape)
	for i := 0; i < len(pads)/2; i++ {
		d := n - 1 - i
		if pads[2*i] < 0 || pads[2*i+1] < 0 {
			shapeErr("Pad", "negative padding", t.shape, cloneInts(pads))
		}
		before[d] = pads[2*i]
		shape[d] += pads[2*i] + pads[2*i+1]
	}
	if sameShape(shape, t.shape) {
		return t
	}
	out := newResultData(shape, true, t)
	inShape := cloneInts(t.shape)
	embed(out.data, t.data, shape, inShape, before, false)
	if !needGrad(t) {
		return out
	}
	return record(out, "ConstantPadNdBackward", []*Tensor{t}, func(g []float32) [][]float32 {
		gx := gradBuf(len(t.data), true)
		embed(g, gx, shape, inShape, before, true)
		return [][]float32{gx}
	})
}

// embed copies the small tensor (inShape) into the big one (shape) at offset
// before per dimension, or, with back, the big tensor's region into small.
func embed(big, small []float32, shape, inShape, before []int, back bool) {
	n := len(shape)
	if len(small) == 0 {
		return
	}
	last := inShape[n-1]
	rows := len(small) / last
	idx := make([]int, n-1)
	for r := range rows {
		o := 0
		for d := 0; d < n-1; d++ {
			o = o*shape[d] + idx[d] + before[d]
		}
		o = o*shape[n-1] + before[n-1]
		if back {
			copy(small[r*last:(r+1)*last], big[o:o+last])
		} else {
			copy(big[o:o+last], small[r*last:(r+1)*last])
		}
		for d := n - 2; d >= 0; d-- {
			idx[d]++
			if idx[d] < inShape[d] {
				break
			}
			idx[d] = 0
		}
	}
}

// IndexRows returns the rows of t [R, C] listed in index, as t[index] with an
// int64 index tensor in torch: the result is [len(index), C]. The backward
// adds each row's gradient into the row it came from.
func (t *Tensor) IndexRows(index []int64) *Tensor {
	if t.Dim() != 2 {
		shapeErr("IndexRows", "want a 2-dimensional table", t.shape)
	}
	rows, cols := t.shape[0], t.shape[1]
	for _, i := range index {
		if i < 0 || i >= int64(rows) {
			shapeErr("IndexRows", fmt.Sprintf("index %d out of range for %d rows", i, rows), t.shape)
		}
	}
	out := newResult([]int{len(index), cols}, t)
	for r, i := range index {
		copy(out.data[r*cols:(r+1)*cols], t.data[int(i)*cols:(int(i)+1)*cols])
	}
	if !needGrad(t) {
		return out
	}
	return record(out, "IndexBackward", []*Tensor{t}, func(g []float32) [][]float32 {
		gx := gradBuf(len(t.data), true)
		for r, i := range index {
			dst := gx[int(i)*cols : (int(i)+1)*cols]
			for j, v := range g[r*cols : (r+1)*cols] {
				dst[j] += v
			}
		}
		return [][]float32{gx}
	})
}

// Normalize divides t by its L2 norm over the last dimension, clamped below
// at eps, as torch.nn.functional.normalize(t, dim=-1, eps=eps).
func (t *Tensor) Normalize(eps float64) *Tensor {
	if t.Dim() == 0 {
		shapeErr("Normalize", "want at least one dimension", t.shape)
	}
	d := t.shape[t.Dim()-1]
	rows := 0
	if d > 0 {
		rows = len(t.data) / d
	}
	out := newResult(cloneInts(t.shape), t)
	norms := make([]float64, rows)
	for r := range rows {
		xs := t.data[r*d : (r+1)*d]
		s := 0.0
		for _, v := range xs {
			s += float64(v) * float64(v)
		}
		nr := math.Max(math.Sqrt(s), eps)
		norms[r] = nr
		inv := 1 / nr
		for j, v := range xs {
			out.data[r*d+j] = float32(float64(v) * inv)
		}
	}
	if !needGrad(t) {
		return out
	}
	return record(out, "NormalizeBackward", []*Tensor{t}, func(g []float32) [][]float32 {
		gx := gradBuf(len(g), true)
		for r := range rows {
			xs, gs := t.data[r*d:(r+1)*d], g[r*d:(r+1)*d]
			nr := norms[r]
			clamped := nr == eps
			dot := 0.0
			for j, v := range gs {
				dot += float64(v) * float64(xs[j])
			}
			for j, v := range gs {
				if clamped {
					gx[r*d+j] = float32(float64(v) / nr)
				} else {
					gx[r*d+j] = float32((float64(v) - float64(xs[j])*dot/(nr*nr)) / nr)
				}
			}
		}
		return [][]float32{gx}
	})
}

// WindowPartition splits x [B, H, W, C] into non-overlapping wh×ww windows,
// returning [B*(H/wh)*(W/ww), wh*ww, C] with windows in row-major order of
// their position, as Swin's shifted_window_attention lays them out. H and W
// must be multiples of the window (pad first).
func WindowPartition(x *Tensor, wh, ww int) *Tensor {
	if x.Dim() != 4 || wh <= 0 || ww <= 0 || x.shape[1]%wh != 0 || x.shape[2]%ww != 0 {
		shapeErr("WindowPartition", fmt.Sprintf("want [B, H, W, C] with H, W multiples of %dx%d", wh, ww), x.shape)
	}
	b, h, w, c := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	return x.Reshape(b, h/wh, wh, w/ww, ww, c).Permute(0, 1, 3, 2, 4, 5).Reshape(b*(h/wh)*(w/ww), wh*ww, c)
}

// WindowReverse is the inverse of [WindowPartition]: windows
// [B*(H/wh)*(W/ww), wh*ww, C] back to [B, H, W, C].
func WindowReverse(x *Tensor, wh, ww, h, w int) *Tensor {
	if x.Dim() != 3 || wh <= 0 || ww <= 0 || h%wh != 0 || w%ww != 0 || x.shape[1] != wh*ww || x.shape[0]%((h/wh)*(w/ww)) != 0 {
		shapeErr("WindowReverse", fmt.Sprintf("windows of %dx%d do not tile %dx%d", wh, ww, h, w), x.shape)
	}
	c := x.shape[2]
	b := x.shape[0] / ((h / wh) * (w / ww))
	return x.Reshape(b, h/wh, w/ww, wh, ww, c).Permute(0, 1, 3, 2, 4, 5).Reshape(b, h, w, c)
}

// RelativePositionIndex returns the index of Swin's and MaxViT's relative
// position bias tables for a wh×ww window: entry (i, j), for tokens i and j
// in row-major order, is (dy+wh-1)*(2*ww-1) + dx+ww-1 with (dy, dx) the
// offset of i from j. The result has (wh*ww)² entries in row-major order.
func RelativePositionIndex(wh, ww int) []int64 {
	n := wh * ww
	out := make([]int64, 0, n*n)
	for i := range n {
		for j := range n {
			dy := i/ww - j/ww + wh - 1
			dx := i%ww - j%ww + ww - 1
			out = append(out, int64(dy*(2*ww-1)+dx))
		}
	}
	return out
}

// RelativePositionBias gathers a relative position bias table [T, heads]
// through index ((N·N) entries, from [RelativePositionIndex] or a
// checkpoint's relative_position_index buffer) into the per-head bias
// [heads, N, N] that attention logits add.
func RelativePositionBias(table *Tensor, index []int64, n int) *Tensor {
	if len(index) != n*n {
		shapeErr("RelativePositionBias", fmt.Sprintf("%d index entries for %d tokens", len(index), n), table.shape)
	}
	heads := table.Size(1)
	if needGrad(table) || table.Dim() != 2 {
		return table.IndexRows(index).Reshape(n, n, heads).Permute(2, 0, 1)
	}
	// No graph: gathered straight into [heads, N, N], one pass instead of
	// IndexRows' copy and Permute's (Swin builds this on every forward).
	rows := table.shape[0]
	out := newResultData([]int{heads, n, n}, false, table)
	od, nsq := out.data, n*n
	for r, i := range index {
		if i < 0 || i >= int64(rows) {
			shapeErr("IndexRows", fmt.Sprintf("index %d out of range for %d rows", i, rows), table.shape)
		}
		for h, v := range table.data[int(i)*heads : (int(i)+1)*heads] {
			od[h*nsq+r] = v
		}
	}
	return out
}
