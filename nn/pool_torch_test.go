package nn

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestPoolTorchBits checks both max pooling paths against torch's output
// (testdata/gen/pool_bits.py computes it for the input and geometries the
// test sends)
// bit for bit on inputs full of NaNs with distinct payloads, signed zeros and
// infinities: which NaN and which zero a window gives is torch's choice. Both
// average pooling paths sum in torch's order and must give its bits too (on
// finite inputs: a sum's NaN is any NaN).
func TestPoolTorchBits(t *testing.T) {
	haveTorch(t)
	r := rand.New(rand.NewPCG(9, 10))
	x := &Tensor{shape: []int{2, 3, 9, 11}}
	x.data = poolData(r, numel(x.shape), 0.25)
	xf := &Tensor{shape: x.shape, data: poolData(r, numel(x.shape), 0)}
	cases := []PoolParams{
		{KernelSize: [2]int{3, 3}, Stride: [2]int{2, 2}, Padding: [2]int{1, 1}},
		{KernelSize: [2]int{2, 2}, Stride: [2]int{2, 2}},
		{KernelSize: [2]int{3, 3}, Stride: [2]int{2, 2}, CeilMode: true},
		{KernelSize: [2]int{3, 3}, Stride: [2]int{1, 1}, Padding: [2]int{1, 1}, CeilMode: true},
		{KernelSize: [2]int{2, 3}, Stride: [2]int{1, 2}, Padding: [2]int{1, 1}, Dilation: [2]int{2, 1}, CeilMode: true},
		{KernelSize: [2]int{4, 2}, Stride: [2]int{3, 3}, Padding: [2]int{2, 0}, Dilation: [2]int{1, 3}, CeilMode: true},
	}
	type tcase struct {
		K    [2]int `json:"k"`
		S    [2]int `json:"s"`
		P    [2]int `json:"p"`
		D    [2]int `json:"d"`
		Ceil bool   `json:"ceil"`
	}
	req := struct {
		Shape []int   `json:"shape"`
		X     string  `json:"x"`
		XF    string  `json:"xf"`
		Cases []tcase `json:"cases"`
	}{Shape: x.shape, X: hex.EncodeToString(poolBytes(x.data)), XF: hex.EncodeToString(poolBytes(xf.data))}
	for _, p := range cases {
		d := p.Dilation
		for i := range d {
			d[i] = max(d[i], 1)
		}
		req.Cases = append(req.Cases, tcase{p.KernelSize, p.Stride, p.Padding, d, p.CeilMode})
	}
	in, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(torchPython, filepath.Join("..", "testdata", "gen", "pool_bits.py"))
	cmd.Stdin = bytes.NewReader(in)
	outb, err := cmd.Output()
	if err != nil {
		t.Fatalf("torch: %v", err)
	}
	var res [][]string
	if err := json.Unmarshal(outb, &res); err != nil || len(res) != len(cases) {
		t.Fatalf("torch output: %v (%d results for %d cases)", err, len(res), len(cases))
	}
	paths := []struct {
		name string
		col  int // torch's result in res[i]
		f    func(PoolParams) *Tensor
	}{
		{"max no_grad", 0, func(p PoolParams) (y *Tensor) { NoGrad(func() { y = MaxPool2dFn(x, p) }); return y }},
		{"max grad", 1, func(p PoolParams) *Tensor { return MaxPool2dFn(x.Detach().SetRequiresGrad(true), p) }},
		{"avg include_pad", 2, func(p PoolParams) (y *Tensor) { NoGrad(func() { y = AvgPool2dFn(xf, p, true) }); return y }},
		{"avg exclude_pad", 3, func(p PoolParams) (y *Tensor) { NoGrad(func() { y = AvgPool2dFn(xf, p, false) }); return y }},
		{"avg include_pad grad", 2, func(p PoolParams) *Tensor { return AvgPool2dFn(xf.Detach().SetRequiresGrad(true), p, true) }},
	}
	for i, p := range cases {
		for _, path := range paths {
			if path.col >= len(res[i]) {
				continue // avg_pool2d has no dilation
			}
			b, err := hex.DecodeString(res[i][path.col])
			if err != nil {
				t.Fatal(err)
			}
			want := make([]float32, len(b)/4)
			for k := range want {
				want[k] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*k:]))
			}
			got := path.f(p)
			if k, ok := sameBits(got.data, want); !ok {
				if k < 0 {
					t.Fatalf("%s %s: got %d values, want %d", poolName(p), path.name, len(got.data), len(want))
				}
				t.Errorf("%s %s: [%d] got %v (%#x), want %v (%#x)", poolName(p), path.name, k,
					got.data[k], math.Float32bits(got.data[k]), want[k], math.Float32bits(want[k]))
			}
		}
	}
}

func poolBytes(x []float32) []byte {
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}
