package vec

//go:generate go run gen_vec.go

// Act is an elementwise activation, computed with torch's formula.
type Act uint8

// The activations.
const (
	Identity    Act = iota // x
	ReLU                   // max(x, 0)
	ReLU6                  // min(max(x, 0), 6)
	SiLU                   // x/(1+e^-x)
	Sigmoid                // 1/(1+e^-x)
	Hardswish              // x*min(max(x+3, 0), 6)/6
	Hardsigmoid            // min(max(x+3, 0), 6)/6
	GELU                   // x/2·(1+erf(x/√2)), erf to within 1.5e-7 as torch's CPU kernel has it
	numActs
)

var actNames = [numActs]string{"Identity", "ReLU", "ReLU6", "SiLU", "Sigmoid", "Hardswish", "Hardsigmoid", "GELU"}

// String returns the activation's torch module name ("SiLU").
func (a Act) String() string {
	if a < numActs {
		return actNames[a]
	}
	return "Act(" + itoa(int(a)) + ")"
}

func itoa(v int) string {
	if v == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for ; v > 0; v /= 10 {
		i--
		b[i] = byte('0' + v%10)
	}
	return string(b[i:])
}

// kernelFn sets dst[i] = f(src[i]) for i < len(src), where f is the kernel's
// map; len(src) > 0 and len(dst) >= len(src). scale and shift are the
// affine map's, for the kernels that have one.
type kernelFn func(dst, src []float32, scale, shift float32)

// kernels is one implementation of every map.
type kernels struct {
	name          string
	plain, affine [numActs]kernelFn // act(x) and act(x*scale+shift)
	scale, exp    kernelFn          // x*scale and e^x
}

// impls lists the implementations this CPU runs, best first; the last is
// pure Go. The first is the one used.
var impls = append(asmKernels(), goKernels)

// Impl returns the name of the kernels in use: "avx512", "avx2" or "go".
func Impl() string { return impls[0].name }

// Apply sets p[i] = a(p[i]).
func Apply(p []float32, a Act) { ApplyTo(p, p, a) }

// ApplyTo sets dst[i] = a(src[i]) for i < len(src). dst must be at least as
// long as src, and either start where src does or not overlap it.
func ApplyTo(dst, src []float32, a Act) {
	checkAct(a)
	if run(dst, src, "ApplyTo") {
		impls[0].plain[a](dst, src, 1, 0)
	}
}

// AffineApply sets p[i] = a(p[i]*scale + shift), with the multiply-add fused
// where the CPU has FMA.
func AffineApply(p []float32, scale, shift float32, a Act) {
	checkAct(a)
	if len(p) > 0 {
		impls[0].affine[a](p, p, scale, shift)
	}
}

// Scale sets p[i] = p[i]*f.
func Scale(p []float32, f float32) {
	if len(p) > 0 {
		impls[0].scale(p, p, f, 0)
	}
}

// Exp sets p[i] = e^p[i].
func Exp(p []float32) {
	if len(p) > 0 {
		impls[0].exp(p, p, 0, 0)
	}
}

func checkAct(a Act) {
	if a >= numActs {
		panic("vec: unknown activation " + a.String())
	}
}

// run checks ApplyTo's slices and reports whether there is work.
func run(dst, src []float32, fn string) bool {
	if len(dst) < len(src) {
		panic("vec: " + fn + ": dst has " + itoa(len(dst)) + " elements, src " + itoa(len(src)))
	}
	return len(src) > 0
}

// copyKernel is the Identity map.
func copyKernel(dst, src []float32, _, _ float32) { copy(dst, src) }

// AddReLU sets dst[i] = relu(dst[i] + src[i]) for i < len(dst), as torch's
// relu(a + b) computes it: a NaN sum stays NaN and a -0 sum stays -0 (the
// residual connection of ResNet's blocks). src must be at least as long as
// dst and must not overlap it except by being dst itself.
func AddReLU(dst, src []float32) {
	if len(src) < len(dst) {
		panic("vec: AddReLU: src has " + itoa(len(src)) + " elements, dst " + itoa(len(dst)))
	}
	if len(dst) > 0 {
		addReLU(dst, src[:len(dst)])
	}
}

// addReLUGo is AddReLU in Go, the reference the assembly is tested against.
func addReLUGo(dst, src []float32) {
	src = src[:len(dst)]
	for i, v := range dst {
		s := v + src[i]
		if s < 0 { // false for NaN and -0, which pass through
			s = 0
		}
		dst[i] = s
	}
}
