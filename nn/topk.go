package nn

import (
	"math"
	"sort"
)

// TopK returns the indices of the k largest values of v, largest first (all
// of them when k >= len(v)). Ties go to the lower index, as torch.topk does
// on CPU; NaN ranks above every number, as in torch.
func TopK(v []float32, k int) []int {
	k = max(0, min(k, len(v)))
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	before := func(a, b float32) bool {
		if math.IsNaN(float64(a)) {
			return !math.IsNaN(float64(b))
		}
		return a > b
	}
	sort.SliceStable(idx, func(i, j int) bool { return before(v[idx[i]], v[idx[j]]) })
	return idx[:k]
}

// TopK returns, for each row of t's last dimension (each image of a batch
// of logits [N, C]), the indices of its k largest values, largest first, as
// [TopK] orders them. A 1-d t is one row.
func (t *Tensor) TopK(k int) [][]int {
	shape := t.Shape()
	if len(shape) == 0 {
		panic(&ShapeError{Op: "TopK", Shape: [][]int{shape}, Msg: "needs at least one dimension"})
	}
	c := shape[len(shape)-1]
	d := t.Data()
	rows := 0
	if c > 0 {
		rows = len(d) / c
	}
	out := make([][]int, rows)
	for r := range out {
		out[r] = TopK(d[r*c:(r+1)*c], k)
	}
	return out
}
