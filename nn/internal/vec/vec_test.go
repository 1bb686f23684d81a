package vec

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ckptkit/ckpt/internal/testenv"
)

var nan32 = float32(math.NaN())

// edgeValues are the inputs where the maps' special cases are: NaN,
// infinities, signed zeros, subnormals, float32's extremes, exp's overflow
// and underflow thresholds and the clamps' corners.
var edgeValues = []float32{
	nan32, float32(math.Inf(1)), float32(math.Inf(-1)), 0, float32(math.Copysign(0, -1)), 1, -1,
	math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32,
	1.1754944e-38, -1.1754944e-38, 1e-40, -1e-40, 3, -3, 6, -6,
	math.Nextafter32(3, 0), math.Nextafter32(-3, 0), math.Nextafter32(6, 7),
	88.72, 88.7228, 88.72284, 88.7229, 89, 89.5, 100, -87.3365, -87.34, -88.72, -89, -100,
	-103.97, -103.98, -104, -104.5, 1e10, -1e10,
}

// randomValues returns n inputs: mostly in the activations' interesting
// range, some spread over many magnitudes, a few edge values.
func randomValues(r *rand.Rand, n int) []float32 {
	p := make([]float32, n)
	for i := range p {
		switch r.IntN(8) {
		case 0:
			p[i] = edgeValues[r.IntN(len(edgeValues))]
		case 1:
			p[i] = float32(math.Ldexp(r.Float64()+0.5, r.IntN(40)-30)) * float32(1-2*r.IntN(2))
		case 2:
			p[i] = float32(r.Float64()*220 - 110)
		default:
			p[i] = float32(r.NormFloat64() * 4)
		}
	}
	return p
}

// ulps is the number of float32 values between a and b (0 for -0 and +0).
func ulps(a, b float32) int64 {
	ord := func(f float32) int64 {
		u := math.Float32bits(f)
		if u&0x80000000 != 0 {
			return -int64(u &^ 0x80000000)
		}
		return int64(u)
	}
	d := ord(a) - ord(b)
	if d < 0 {
		d = -d
	}
	return d
}

func isNaN(f float32) bool { return f != f }

// same reports whether a and b are the same float32, NaN equal to NaN and
// zeros compared with their signs.
func same(a, b float32) bool {
	return math.Float32bits(a) == math.Float32bits(b) || isNaN(a) && isNaN(b)
}

// fma32 is x*s+t rounded once to float32, as FMA computes it.
func fma32(x, s, t float32) float32 {
	if math.IsInf(float64(x), 0) || math.IsInf(float64(s), 0) || math.IsInf(float64(t), 0) || isNaN(x) || isNaN(s) || isNaN(t) {
		return float32(float64(x)*float64(s) + float64(t)) // Inf and NaN results: no rounding involved
	}
	z := new(big.Float).SetPrec(256).SetFloat64(float64(x))
	z.Mul(z, new(big.Float).SetFloat64(float64(s)))
	z.Add(z, new(big.Float).SetFloat64(float64(t)))
	f, _ := z.Float32()
	if f == 0 && z.Signbit() {
		return float32(math.Copysign(0, -1))
	}
	return f
}

// clampActs agree bit for bit between implementations; the others (through
// exp) may differ by FMA's rounding.
var clampActs = map[Act]bool{Identity: true, ReLU: true, ReLU6: true, Hardswish: true, Hardsigmoid: true}

// maxULPs bounds the difference between two implementations of the
// exponential-based maps: each exponential is within 1 ulp of exact
// (TestExpAccuracy measures it; 2 is its documented bound), so two are up to
// 2 apart, and where the result is about 1/e^-x (sigmoid and silu of
// negative x) each side's division rounds once more.
const maxULPs = 3

// GELU's erf is within 1.5e-7 of exact before rounding (Abramowitz and
// Stegun 7.1.26); 1 - t·r·e^-z² then loses up to a few float32 roundings of
// 6e-8 each to cancellation, so GELU's error is absolute, in units of |x|,
// not ulps: geluExactTol bounds it against float64 erf (measured 2.7e-7),
// geluImplTol between two implementations (twice that), and geluTorchTol
// against torch, whose CPU GELU is itself approximated (3.7e-7 from exact
// at most on [-6, 6], measured) and rounds on its own.
const (
	geluExactTol = 4e-7
	geluImplTol  = 2 * geluExactTol
	geluTorchTol = 8e-7
)

// near reports whether got and want, two results of a's map at x, agree
// within tol (the ulps bound, or for GELU the absolute bound per |x|).
func near(a Act, x, got, want float32, ulpTol int64, geluTol float64) bool {
	if ulps(got, want) <= ulpTol {
		return true
	}
	return a == GELU && math.Abs(float64(got)-float64(want)) <= geluTol*math.Abs(float64(x))
}

// TestKernelsAgainstGo runs every kernel of every implementation this CPU
// has against the pure-Go one over lengths 0..70 (every tail length of both
// vector widths), four alignments, in place and out of place, on random and
// edge values; and checks that nothing outside dst[:len(src)] is written.
func TestKernelsAgainstGo(t *testing.T) {
	if len(impls) == 1 {
		t.Skip("no assembly kernels on this CPU or build; pure Go is the reference itself")
	}
	r := rand.New(rand.NewPCG(1, 2))
	const guard = 12345.678
	for _, im := range impls[:len(impls)-1] {
		for a := range numActs {
			for _, mode := range []string{"plain", "affine", "scale", "exp"} {
				if (mode == "scale" || mode == "exp") && a != Identity {
					continue
				}
				name := fmt.Sprintf("%s/%s/%v", im.name, mode, a)
				if mode == "scale" || mode == "exp" {
					name = im.name + "/" + mode
				}
				t.Run(name, func(t *testing.T) {
					for n := 0; n <= 70; n++ {
						for off := 0; off < 4; off++ {
							for _, inPlace := range []bool{true, false} {
								src := randomValues(r, n)
								scale, shift := float32(r.NormFloat64()), float32(r.NormFloat64())
								check(t, im, mode, a, src, scale, shift, off, inPlace, guard)
							}
						}
					}
				})
			}
		}
	}
}

func check(t *testing.T, im *kernels, mode string, a Act, src []float32, scale, shift float32, off int, inPlace bool, guard float32) {
	t.Helper()
	n := len(src)
	buf := make([]float32, n+off+1)
	for i := range buf {
		buf[i] = guard
	}
	dst := buf[off : off+n]
	in := dst
	if !inPlace {
		in = make([]float32, n+off)[off:]
		copy(in, src)
	} else {
		copy(dst, src)
	}
	if n > 0 {
		switch mode {
		case "plain":
			im.plain[a](dst, in, scale, shift)
		case "affine":
			im.affine[a](dst, in, scale, shift)
		case "scale":
			im.scale(dst, in, scale, shift)
		case "exp":
			im.exp(dst, in, scale, shift)
		}
	}
	for i := range off {
		if buf[i] != guard {
			t.Fatalf("n=%d off=%d: wrote buf[%d] before dst", n, off, i)
		}
	}
	if buf[off+n] != guard {
		t.Fatalf("n=%d off=%d: wrote past dst", n, off)
	}
	if !inPlace {
		for i, v := range in {
			if !same(v, src[i]) {
				t.Fatalf("n=%d off=%d: src[%d] changed from %v to %v", n, off, i, src[i], v)
			}
		}
	}
	for i, x := range src {
		got := dst[i]
		var want float32
		exact := clampActs[a]
		switch mode {
		case "plain":
			want = goMapOne(a, x)
		case "affine":
			// The assembly's affine map is one FMA: the result must be
			// exactly its own plain kernel applied to fma(x, scale, shift).
			pre := fma32(x, scale, shift)
			p := []float32{pre}
			im.plain[a](p, p, 1, 0)
			want, exact = p[0], true
		case "scale":
			want, exact = x*scale, true
		case "exp":
			want, exact = exp32(x), false
		}
		if isNaN(want) || isNaN(got) || math.IsInf(float64(want), 0) || exact {
			if !same(got, want) {
				t.Fatalf("n=%d off=%d inplace=%v x=%v (scale %v shift %v): got %v, want %v (bits %08x, %08x)",
					n, off, inPlace, x, scale, shift, got, want, math.Float32bits(got), math.Float32bits(want))
			}
			continue
		}
		if !near(a, x, got, want, maxULPs, geluImplTol) {
			t.Fatalf("n=%d off=%d x=%v: got %v, want %v (pure Go), %d ulps apart, want at most %d", n, off, x, got, want, ulps(got, want), maxULPs)
		}
	}
}

// goMapOne is the pure-Go kernel of a on one value.
func goMapOne(a Act, x float32) float32 {
	p := []float32{x}
	goKernels.plain[a](p, p, 1, 0)
	return p[0]
}

// TestGoAffine checks the pure-Go affine kernels: the plain map of
// x*scale+shift rounded twice, as Go computes it without FMA.
func TestGoAffine(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	src := randomValues(r, 2000)
	for a := range numActs {
		scale, shift := float32(r.NormFloat64()), float32(r.NormFloat64())
		dst := make([]float32, len(src))
		goKernels.affine[a](dst, src, scale, shift)
		for i, x := range src {
			prod := x * scale
			if want := goMapOne(a, prod+shift); !same(dst[i], want) {
				t.Errorf("%v(%v*%v+%v): got %v, want %v", a, x, scale, shift, dst[i], want)
			}
		}
	}
}

// TestExpAccuracy checks every implementation's exponential against
// math.Exp rounded to float32 (the correctly rounded result but for
// math.Exp's own sub-ulp error): within 2 ulps where e^x is a normal float32
// (with a dense sweep of [-87.3, 88.7] and random values), within 1 ulp
// where it is subnormal, +Inf above the overflow threshold and 0 below
// -104.
func TestExpAccuracy(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var xs []float32
	for x := float32(-87.33); x < 88.72; x += 0.0031 {
		xs = append(xs, x)
	}
	for range 100000 {
		xs = append(xs, float32(r.Float64()*(88.72+87.33)-87.33))
	}
	for range 20000 {
		xs = append(xs, float32(-r.Float64()*(103.9-87.34)-87.34)) // subnormal results
	}
	for _, x := range []float32{88.7229, 88.73, 89, 1000, float32(math.Inf(1))} {
		xs = append(xs, x)
	}
	xs = append(xs, -103.98, -104, -200, float32(math.Inf(-1)))
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			got := make([]float32, len(xs))
			im.exp(got, xs, 0, 0)
			worst, at := int64(0), float32(0)
			for i, x := range xs {
				want := float32(math.Exp(float64(x)))
				tol := int64(2)
				if want < math.SmallestNonzeroFloat32*(1<<23) {
					tol = 1
				}
				d := ulps(got[i], want)
				if d > worst {
					worst, at = d, x
				}
				if d > tol {
					t.Errorf("exp(%v): got %v, want %v, %d ulps apart, want at most %d", x, got[i], want, d, tol)
				}
			}
			t.Logf("worst: %d ulps at %v over %d values", worst, at, len(xs))
			p := []float32{nan32}
			im.exp(p, p, 0, 0)
			if !isNaN(p[0]) {
				t.Errorf("exp(NaN): got %v, want NaN", p[0])
			}
		})
	}
}

// TestGELUAccuracy checks every implementation's GELU against float64 erf:
// within geluExactTol·|x| for 1e-30 <= |x| <= 1e30 (below, x/2 itself
// rounds in float32's subnormals; above, x is returned), on a sweep of
// [-10, 10] and random values.
func TestGELUAccuracy(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	xs := randomValues(r, 50000)
	for x := float32(-10); x <= 10; x += 0.0007 {
		xs = append(xs, x)
	}
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			got := make([]float32, len(xs))
			im.plain[GELU](got, xs, 1, 0)
			worst, at, bad := 0.0, float32(0), 0
			for i, x := range xs {
				ax := math.Abs(float64(x))
				if isNaN(x) || ax < 1e-30 || ax > 1e30 {
					continue
				}
				v := float64(x)
				want := 0.5 * v * (1 + math.Erf(v/math.Sqrt2))
				e := math.Abs(float64(got[i])-want) / ax
				if e > worst {
					worst, at = e, x
				}
				if e > geluExactTol {
					if bad++; bad <= 10 {
						t.Errorf("gelu(%v): got %v, want %v, error %.3g·|x|, want at most %g·|x|", x, got[i], want, e, geluExactTol)
					}
				}
			}
			t.Logf("worst %.3g·|x| at %v over %d values", worst, at, len(xs))
		})
	}
}

// torchColumns are the maps in the order of the fixture's columns after x.
var torchColumns = []struct {
	name string
	act  Act // for the activations
	exp  bool
}{{name: "exp", exp: true}, {"relu", ReLU, false}, {"relu6", ReLU6, false}, {"silu", SiLU, false},
	{"sigmoid", Sigmoid, false}, {"hardswish", Hardswish, false}, {"hardsigmoid", Hardsigmoid, false},
	{"gelu", GELU, false}}

// readTorchFixture reads a file written by testdata/gen/vec_activations.py:
// the inputs and then one column per torchColumns entry.
func readTorchFixture(t *testing.T, path string) (x []float32, cols [][]float32) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k := 1 + len(torchColumns)
	if len(b)%(4*k) != 0 {
		t.Fatalf("%s: %d bytes, not %d columns of float32", path, len(b), k)
	}
	n := len(b) / (4 * k)
	all := make([]float32, n*k)
	for i := range all {
		all[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	for c := 1; c < k; c++ {
		cols = append(cols, all[c*n:(c+1)*n])
	}
	return all[:n], cols
}

// TestTorchFixture compares every implementation with torch's own outputs,
// made by testdata/gen/vec_activations.py (seed 0) into
// testdata/torch_activations.bin.
func TestTorchFixture(t *testing.T) {
	x, cols := readTorchFixture(t, filepath.Join("testdata", "torch_activations.bin"))
	compareTorch(t, x, cols)
}

// TestTorchInterop regenerates the fixture with a fresh seed when torch is
// installed and compares again.
func TestTorchInterop(t *testing.T) {
	py := testenv.Python(t)
	seed := rand.IntN(1 << 30)
	out := filepath.Join(t.TempDir(), "act.bin")
	if b, err := exec.Command(py, "../../../testdata/gen/vec_activations.py", "--seed", fmt.Sprint(seed), "--out", out).CombinedOutput(); err != nil {
		t.Fatalf("vec_activations.py: %v\n%s", err, b)
	}
	t.Logf("seed %d", seed)
	x, cols := readTorchFixture(t, out)
	compareTorch(t, x, cols)
}

// torchULPs bounds the distance to torch for the exponential-based maps,
// as maxULPs does between implementations: ours is within 1 ulp of exact
// (measured by TestExpAccuracy), torch's (Sleef's expf_u10 in its vector
// path) within 1, and the divisions round once more on each side. The
// clamping maps must agree bit for bit, signed zeros included.
const torchULPs = 3

func compareTorch(t *testing.T, x []float32, cols [][]float32) {
	for _, im := range impls {
		for c, col := range torchColumns {
			t.Run(im.name+"/"+col.name, func(t *testing.T) {
				got := make([]float32, len(x))
				if col.exp {
					im.exp(got, x, 0, 0)
				} else {
					im.plain[col.act](got, x, 1, 0)
				}
				bad, worst, worstAbs := 0, int64(0), 0.0
				for i, want := range cols[c] {
					if !isNaN(want) && !isNaN(got[i]) {
						worst = max(worst, ulps(got[i], want))
						if ax := math.Abs(float64(x[i])); ax > 1e-30 && ax < 1e30 && !math.IsInf(float64(want), 0) {
							worstAbs = max(worstAbs, math.Abs(float64(got[i])-float64(want))/ax)
						}
					}
					ok := same(got[i], want)
					if !ok && !clampActs[col.act] && !col.exp || !ok && col.exp {
						ok = !isNaN(want) && !isNaN(got[i]) && near(col.act, x[i], got[i], want, torchULPs, geluTorchTol)
					}
					if !ok {
						if bad++; bad <= 10 {
							t.Errorf("%s(%v): got %v, want %v (torch), %d ulps apart", col.name, x[i], got[i], want, ulps(got[i], want))
						}
					}
				}
				t.Logf("%d values, worst %d ulps (%.2g·|x|) from torch", len(x), worst, worstAbs)
			})
		}
	}
}

// TestAPI checks the exported functions on the kernels in use, against the
// pure-Go kernels, and their argument checks.
func TestAPI(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	src := randomValues(r, 37)
	for a := range numActs {
		p := append([]float32(nil), src...)
		Apply(p, a)
		q := make([]float32, len(src)+2)
		ApplyTo(q, src, a)
		for i, x := range src {
			want := goMapOne(a, x)
			if !same(p[i], q[i]) {
				t.Errorf("%v(%v): Apply gives %v, ApplyTo %v", a, x, p[i], q[i])
			}
			if !same(p[i], want) && (clampActs[a] || !near(a, x, p[i], want, maxULPs, geluImplTol)) {
				t.Errorf("%v(%v): got %v, want %v", a, x, p[i], want)
			}
		}
		if q[len(src)] != 0 || q[len(src)+1] != 0 {
			t.Errorf("%v: ApplyTo wrote past len(src)", a)
		}
		p = append(p[:0], src...)
		AffineApply(p, 2, -1, a)
		for i, x := range src {
			pre := fma32(x, 2, -1)
			if want := goMapOne(a, pre); !same(p[i], want) && (clampActs[a] || !near(a, pre, p[i], want, maxULPs, geluImplTol)) {
				t.Errorf("%v(%v*2-1): got %v, want %v", a, x, p[i], want)
			}
		}
	}
	p := append([]float32(nil), src...)
	Scale(p, -3)
	for i, x := range src {
		if !same(p[i], x*-3) {
			t.Errorf("Scale: %v*-3: got %v, want %v", x, p[i], x*-3)
		}
	}
	p = append(p[:0], src...)
	Exp(p)
	for i, x := range src {
		if want := exp32(x); !same(p[i], want) && ulps(p[i], want) > maxULPs {
			t.Errorf("Exp(%v): got %v, want %v", x, p[i], want)
		}
	}
	Apply(nil, SiLU)
	AffineApply(nil, 1, 0, SiLU)
	Exp(nil)
	Scale(nil, 2)
	for name, f := range map[string]func(){
		"short dst":          func() { ApplyTo(make([]float32, 2), make([]float32, 3), ReLU) },
		"unknown activation": func() { Apply(make([]float32, 2), numActs) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("got no panic, want one")
				}
			}()
			f()
		})
	}
	if Impl() != impls[0].name {
		t.Errorf("Impl: got %q, want %q", Impl(), impls[0].name)
	}
}
