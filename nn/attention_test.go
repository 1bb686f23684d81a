package nn

import (
	"math"
	"slices"
	"strings"
	"testing"
)

// TestAttentionGradCheck checks the backward of the transformer ops against
// finite differences (gradCheck's tolerances).
func TestAttentionGradCheck(t *testing.T) {
	bmm := func(ta, tb bool) func([]*Tensor) *Tensor {
		return func(in []*Tensor) *Tensor { return BatchedMatMul(in[0], in[1], ta, tb) }
	}
	idx := []int64{2, 0, 1, 2, 2, 3}
	cases := []struct {
		name   string
		f      func([]*Tensor) *Tensor
		inputs []*Tensor
	}{
		{"bmm_nn", bmm(false, false), []*Tensor{randT(1, nil, 2, 3, 4), randT(2, nil, 2, 4, 5)}},
		{"bmm_nt", bmm(false, true), []*Tensor{randT(1, nil, 2, 3, 4), randT(2, nil, 2, 5, 4)}},
		{"bmm_tn", bmm(true, false), []*Tensor{randT(1, nil, 2, 4, 3), randT(2, nil, 2, 4, 5)}},
		{"bmm_tt", bmm(true, true), []*Tensor{randT(1, nil, 2, 4, 3), randT(2, nil, 2, 5, 4)}},
		{"bmm_shared_b", bmm(false, true), []*Tensor{randT(1, nil, 3, 2, 4), randT(2, nil, 5, 4)}},
		{"roll", func(in []*Tensor) *Tensor { return in[0].Roll([]int{-1, 2}, []int{1, 2}) }, []*Tensor{randT(1, nil, 2, 3, 4, 2)}},
		{"pad", func(in []*Tensor) *Tensor { return in[0].Pad(0, 0, 1, 2, 0, 1) }, []*Tensor{randT(1, nil, 2, 3, 2, 2)}},
		{"index_rows", func(in []*Tensor) *Tensor { return in[0].IndexRows(idx) }, []*Tensor{randT(1, nil, 4, 3)}},
		{"normalize", func(in []*Tensor) *Tensor { return in[0].Normalize(1e-12) }, []*Tensor{randT(1, nil, 3, 4)}},
		{"window_partition", func(in []*Tensor) *Tensor { return WindowPartition(in[0], 2, 2).MulScalar(1) }, []*Tensor{randT(1, nil, 1, 4, 2, 3)}},
		{"relative_position_bias", func(in []*Tensor) *Tensor { return RelativePositionBias(in[0], RelativePositionIndex(2, 2), 4) }, []*Tensor{randT(1, nil, 9, 2)}},
		{"bmm_scaled", func(in []*Tensor) *Tensor { return batchedMatMul(in[0], in[1], true, false, 0.5) }, []*Tensor{randT(1, nil, 2, 4, 3), randT(2, nil, 2, 4, 5)}},
		{"sdpa_bias", func(in []*Tensor) *Tensor { return ScaledDotProductAttention(in[0], in[1], in[2], in[3], 0.5) },
			[]*Tensor{randT(1, nil, 2, 3, 4), randT(2, nil, 2, 5, 4), randT(3, nil, 2, 5, 2), randT(4, nil, 3, 5)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { gradCheck(t, c.f, c.inputs...) })
	}
}

// TestMultiheadAttentionGradCheck checks gradients through the packed
// projections of MultiheadAttention, batch first and not.
func TestMultiheadAttentionGradCheck(t *testing.T) {
	for _, bf := range []bool{true, false} {
		ManualSeed(3)
		m := NewMultiheadAttention(nil, 4, 2, 0, bf)
		for i := range m.InProjBias.data {
			m.InProjBias.data[i] = float32(i%5) * 0.1
		}
		x := randT(5, nil, 2, 3, 4)
		gradCheck(t, func(in []*Tensor) *Tensor {
			m.InProjWeight, m.OutProj.Weight = in[1], in[2]
			return m.Forward(in[0])
		}, x, m.InProjWeight, m.OutProj.Weight)
	}
}

// TestMultiheadAttentionLayout checks torch's state_dict keys and printed
// form, and that self-attention equals the explicit formula per head.
func TestMultiheadAttentionLayout(t *testing.T) {
	ManualSeed(1)
	m := NewMultiheadAttention(nil, 4, 2, 0, true)
	var keys []string
	for _, n := range m.StateDict() {
		keys = append(keys, n.Name)
	}
	if want := []string{"in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"}; !slices.Equal(keys, want) {
		t.Errorf("state_dict keys: got %v, want %v", keys, want)
	}
	want := "MultiheadAttention(\n  (out_proj): NonDynamicallyQuantizableLinear(in_features=4, out_features=4, bias=True)\n)"
	if got := Repr(m); got != want {
		t.Errorf("repr: got %q, want %q", got, want)
	}
	x := randT(2, nil, 1, 3, 4)
	got := m.Forward(x)
	// Reference: per head h, softmax(q_h k_hᵀ/sqrt(2)) v_h, then out_proj.
	w, b := m.InProjWeight.data, m.InProjBias.data
	proj := func(i, tok, j int) float64 { // projection i (q, k, v), token, feature
		s := float64(b[i*4+j])
		for c := range 4 {
			s += float64(w[(i*4+j)*4+c]) * float64(x.data[tok*4+c])
		}
		return s
	}
	concat := make([]float64, 3*4)
	for h := range 2 {
		for l := range 3 {
			logits := make([]float64, 3)
			mx := math.Inf(-1)
			for s := range 3 {
				for j := h * 2; j < h*2+2; j++ {
					logits[s] += proj(0, l, j) * proj(1, s, j) / math.Sqrt2
				}
				mx = math.Max(mx, logits[s])
			}
			z := 0.0
			for s := range logits {
				logits[s] = math.Exp(logits[s] - mx)
				z += logits[s]
			}
			for j := h * 2; j < h*2+2; j++ {
				for s := range 3 {
					concat[l*4+j] += logits[s] / z * proj(2, s, j)
				}
			}
		}
	}
	ow, ob := m.OutProj.Weight.data, m.OutProj.Bias.data
	for l := range 3 {
		for o := range 4 {
			want := float64(ob[o])
			for j := range 4 {
				want += float64(ow[o*4+j]) * concat[l*4+j]
			}
			if g := float64(got.data[l*4+o]); math.Abs(g-want) > 1e-5 {
				t.Errorf("output[%d][%d]: got %.6g, want %.6g", l, o, g, want)
			}
		}
	}
}

// TestWindowOps checks roll, padding, window partition and reverse and the
// relative position index on small cases worked out by hand.
func TestWindowOps(t *testing.T) {
	x := New([]float32{0, 1, 2, 3, 4, 5}, 2, 3)
	if got, want := x.Roll([]int{1, -1}, []int{0, 1}).Data(), []float32{4, 5, 3, 1, 2, 0}; !slices.Equal(got, want) {
		t.Errorf("roll: got %v, want %v", got, want)
	}
	if got, want := x.Pad(1, 0, 0, 1).Data(), []float32{0, 0, 1, 2, 0, 3, 4, 5, 0, 0, 0, 0}; !slices.Equal(got, want) {
		t.Errorf("pad: got %v, want %v", got, want)
	}
	// [1, 4, 4, 1] holding 0..15 row-major; 2x2 windows.
	v := make([]float32, 16)
	for i := range v {
		v[i] = float32(i)
	}
	img := New(v, 1, 4, 4, 1)
	win := WindowPartition(img, 2, 2)
	if got, want := win.Data()[:8], []float32{0, 1, 4, 5, 2, 3, 6, 7}; !slices.Equal(got, want) {
		t.Errorf("window partition: got %v, want %v", got, want)
	}
	if back := WindowReverse(win, 2, 2, 4, 4); !slices.Equal(back.Data(), v) {
		t.Errorf("window reverse: got %v, want %v", back.Data(), v)
	}
	// 2x2 window: token 0 (0,0) vs token 3 (1,1): offset (-1,-1) -> (0)*3+0 = 0;
	// token 3 vs 0: (1,1) -> (2)*3+2 = 8; the diagonal is (1)*3+1 = 4.
	idx := RelativePositionIndex(2, 2)
	if idx[0*4+3] != 0 || idx[3*4+0] != 8 || idx[1*4+1] != 4 {
		t.Errorf("relative position index: got %v", idx)
	}
}

// TestInt64TensorBuffer checks that an integer tensor buffer is saved as an
// int64 tensor of its shape and loaded back.
func TestInt64TensorBuffer(t *testing.T) {
	type mod struct {
		Base
		Idx *Int64Tensor
	}
	newMod := func(v []int64) *mod {
		m := &mod{Idx: NewInt64Tensor(v, 2, 2)}
		m.RegisterInt64TensorBuffer("index", &m.Idx)
		return m
	}
	a := newMod([]int64{1, 2, 3, 1 << 40})
	sd := a.StateDict()
	if len(sd) != 1 || sd[0].Name != "index" || sd[0].Tensor.DType.String() != "int64" || len(sd[0].Tensor.Shape) != 2 {
		t.Fatalf("state dict: got %+v", sd)
	}
	b := newMod(make([]int64, 4))
	if _, err := b.base().LoadStateDict(sd, true); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(b.Idx.Data, a.Idx.Data) {
		t.Errorf("loaded: got %v, want %v", b.Idx.Data, a.Idx.Data)
	}
	c := &mod{Idx: NewInt64Tensor(make([]int64, 3), 3)}
	c.RegisterInt64TensorBuffer("index", &c.Idx)
	if _, err := c.base().LoadStateDict(sd, true); err == nil || !strings.Contains(err.Error(), "size mismatch") {
		t.Errorf("loading a [2, 2] index into [3]: got %v, want a size mismatch", err)
	}
	bl := NewBuilder(sd)
	got := bl.Int64Tensor("index", NewInt64Tensor(make([]int64, 4), 2, 2))
	if err := bl.Err(); err != nil || !slices.Equal(got.Data, a.Idx.Data) {
		t.Errorf("builder: got %v (%v), want %v", got.Data, err, a.Idx.Data)
	}
}

// TestScaledDotProductAttentionInference checks that the in-place softmax of
// the inference path agrees with the recorded path's Softmax.
func TestScaledDotProductAttentionInference(t *testing.T) {
	q, k, v := randT(1, nil, 3, 2, 70, 8), randT(2, nil, 3, 2, 70, 8), randT(3, nil, 3, 2, 70, 5)
	bias := randT(4, nil, 2, 70, 70)
	var fast *Tensor
	NoGrad(func() { fast = ScaledDotProductAttention(q, k, v, bias, 0.3) })
	q.SetRequiresGrad(true)
	slow := ScaledDotProductAttention(q, k, v, bias, 0.3)
	if !slow.RequiresGrad() {
		t.Fatal("recorded path: output does not require grad")
	}
	// vec.Exp is within a few ulps of exp; the weights sum to one, so the
	// outputs (|v| < 2) differ by a few 1e-7.
	if !AllClose(fast, slow.Detach(), 0, 2e-6) {
		t.Errorf("inference and recorded attention differ beyond 2e-6")
	}
}

// TestRelativePositionBiasGather checks RelativePositionBias against its
// definition, bias[h, i, j] = table[index[i·N+j], h], on the one-pass path
// (a table that needs no gradient) and the composed one (one that does).
func TestRelativePositionBiasGather(t *testing.T) {
	const wh, ww, heads = 3, 2, 4
	n := wh * ww
	index := RelativePositionIndex(wh, ww)
	for _, grad := range []bool{false, true} {
		table := randT(7, nil, (2*wh-1)*(2*ww-1), heads)
		table.SetRequiresGrad(grad)
		got := RelativePositionBias(table, index, n).Data()
		if len(got) != heads*n*n {
			t.Fatalf("grad %v: got %d elements, want %d", grad, len(got), heads*n*n)
		}
		for h := range heads {
			for r, i := range index {
				if g, w := got[h*n*n+r], table.data[int(i)*heads+h]; g != w {
					t.Fatalf("grad %v: bias[%d, %d, %d]: got %g, want %g", grad, h, r/n, r%n, g, w)
				}
			}
		}
	}
}
