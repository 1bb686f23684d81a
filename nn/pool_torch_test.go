package nn

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os/exec"
	"testing"
)

// poolTorchScript reads an input tensor (float32 bits, hex) and pooling
// geometries as JSON on stdin, and prints torch's max_pool2d outputs, as
// float32 bits in hex, computed without and with a graph (the kernel that
// records indices).
const poolTorchScript = `
import json, sys, torch
import torch.nn.functional as F
req = json.load(sys.stdin)
x = torch.frombuffer(bytearray.fromhex(req["x"]), dtype=torch.float32).reshape(req["shape"])
res = []
for c in req["cases"]:
    args = dict(kernel_size=c["k"], stride=c["s"], padding=c["p"], dilation=c["d"], ceil_mode=c["ceil"])
    with torch.no_grad():
        y0 = F.max_pool2d(x, **args)
    xg = x.clone().requires_grad_(True)
    y1 = F.max_pool2d(xg, **args)
    res.append([y0.numpy().tobytes().hex(), y1.detach().numpy().tobytes().hex()])
json.dump(res, sys.stdout)
`

// TestMaxPoolTorchBits checks both max pooling paths against torch's output
// bit for bit on inputs full of NaNs with distinct payloads, signed zeros and
// infinities: which NaN and which zero a window gives is torch's choice.
func TestMaxPoolTorchBits(t *testing.T) {
	haveTorch(t)
	r := rand.New(rand.NewPCG(9, 10))
	x := &Tensor{shape: []int{2, 3, 9, 11}}
	x.data = poolData(r, numel(x.shape), 0.25)
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
		Cases []tcase `json:"cases"`
	}{Shape: x.shape, X: hex.EncodeToString(poolBytes(x.data))}
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
	cmd := exec.Command(torchPython, "-c", poolTorchScript)
	cmd.Stdin = bytes.NewReader(in)
	outb, err := cmd.Output()
	if err != nil {
		t.Fatalf("torch: %v", err)
	}
	var res [][2]string
	if err := json.Unmarshal(outb, &res); err != nil || len(res) != len(cases) {
		t.Fatalf("torch output: %v (%d results for %d cases)", err, len(res), len(cases))
	}
	for i, p := range cases {
		for j, path := range []string{"no_grad", "grad"} {
			b, err := hex.DecodeString(res[i][j])
			if err != nil {
				t.Fatal(err)
			}
			want := make([]float32, len(b)/4)
			for k := range want {
				want[k] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*k:]))
			}
			var got *Tensor
			if path == "grad" {
				xg := x.Detach().SetRequiresGrad(true)
				got = MaxPool2dFn(xg, p)
			} else {
				NoGrad(func() { got = MaxPool2dFn(x, p) })
			}
			if k, ok := sameBits(got.data, want); !ok {
				if k < 0 {
					t.Fatalf("%s %s: got %d values, want %d", poolName(p), path, len(got.data), len(want))
				}
				t.Errorf("%s %s: [%d] got %#x, want %#x", poolName(p), path, k, math.Float32bits(got.data[k]), math.Float32bits(want[k]))
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
