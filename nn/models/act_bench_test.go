package models

import (
	"math"
	"testing"

	"github.com/ckptkit/ckpt/nn"
)

// BenchmarkAffineAct times eval-mode BatchNorm fused with each activation on
// a [1, 32, 112, 112] tensor (EfficientNet-B0's stem output), side by side:
// "scalar" is the per-element Go loop affineActInPlace ran before the vec
// kernels (kept below as the baseline), "vec" is affineActInPlace. Compare
// the two within one run.
func BenchmarkAffineAct(b *testing.B) {
	bn := nn.NewBatchNorm2d(nil, 32)
	bn.Eval()
	src := nn.RandN(1, 32, 112, 112)
	y := nn.ZerosLike(src)
	for _, k := range []actKind{actNone, actReLU, actReLU6, actHardswish, actSiLU, actHardsigmoid, actSigmoid} {
		for _, impl := range []struct {
			name string
			f    func(*nn.Tensor, *nn.BatchNorm2d, actKind)
		}{{"scalar", scalarAffineAct}, {"vec", affineActInPlace}} {
			b.Run(vecAct[k].String()+"/"+impl.name, func(b *testing.B) {
				b.SetBytes(int64(4 * y.Numel()))
				for b.Loop() {
					b.StopTimer()
					copy(y.Data(), src.Data())
					b.StartTimer()
					impl.f(y, bn, k)
				}
			})
		}
	}
}

// scalarAffineAct is affineActInPlace as it was before the vec kernels.
func scalarAffineAct(y *nn.Tensor, bn *nn.BatchNorm2d, k actKind) {
	c := y.Size(1)
	n := y.Size(0)
	hw := y.Numel() / (n * c)
	d := y.Data()
	parallel(n*c, hw, func(lo, hi int) {
		for nc := lo; nc < hi; nc++ {
			scale, shift := bnAffine(bn, nc%c)
			p := d[nc*hw : (nc+1)*hw]
			for j, v := range p {
				p[j] = v*scale + shift
			}
			scalarAct(p, k)
		}
	})
}

func scalarAct(p []float32, k actKind) {
	switch k {
	case actReLU:
		for j, v := range p {
			if v < 0 {
				p[j] = 0
			}
		}
	case actReLU6:
		for j, v := range p {
			p[j] = min(max(v, 0), 6)
		}
	case actHardswish:
		for j, v := range p {
			p[j] = v * min(max(v+3, 0), 6) / 6
		}
	case actSiLU:
		for j, v := range p {
			p[j] = v * scalarSigmoid(v)
		}
	case actHardsigmoid:
		for j, v := range p {
			p[j] = min(max(v+3, 0), 6) / 6
		}
	case actSigmoid:
		for j, v := range p {
			p[j] = scalarSigmoid(v)
		}
	}
}

func scalarSigmoid(v float32) float32 { return 1 / (1 + scalarExpf(-v)) }

// scalarExpf is the float32 exp the models used before vec's: clamped to
// [-87, 88], degree-6 Taylor polynomial.
func scalarExpf(x float32) float32 {
	const (
		log2e = 1.44269504088896341
		ln2hi = 0.693145751953125
		ln2lo = 1.428606765330187e-06
		magic = 12582912
	)
	x = min(max(x, -87), 88)
	t := x*log2e + magic
	k := int32(math.Float32bits(t)) - 0x4B400000
	fk := t - magic
	r := x - fk*ln2hi - fk*ln2lo
	p := 1 + r*(1+r*(0.5+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720))))))
	return p * math.Float32frombits(uint32(k+127)<<23)
}

// BenchmarkConvNeXtTiny times convnext_tiny on one 224x224 image, whose
// GELUs (one per block, on the 4x wide hidden layer) were a third of its
// time before they ran on the vec kernels.
func BenchmarkConvNeXtTiny(b *testing.B) { benchArch(b, "convnext_tiny", 1, 224) }
