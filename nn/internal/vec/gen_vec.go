//go:build ignore

// gen_vec writes vec_amd64.s and vec_kernels_amd64.go, the AVX-512 and
// AVX2+FMA kernels of package vec. Run it with `go generate` in
// nn/internal/vec.
//
// Every kernel has the Go signature
//
//	func(dst, src *float32, n int, scale, shift float32)
//
// and sets dst[i] = f(src[i]) for i < n, where f is the kernel's map (an
// activation, optionally after x*scale+shift). Each ISA's kernels share one
// loop shape: unrolled full vectors, then single full vectors, then one
// masked vector for the last n%W elements (opmask registers for AVX-512,
// VMASKMOVPS with a mask cut from a table for AVX2), so every element goes
// through the same instructions whatever its position.
//
// Operand order is Go's (sources first, destination last): for a
// three-operand instruction "OP a, b, c" Intel's form is "OP c, b, a". The
// NaN-propagating clamps rely on it: MAXPS/MINPS return their last Intel
// operand (here the first Go operand) when either input is NaN, or when both
// are zeros, which is what torch's clamp_min/clamp_max do (relu(-0) = -0,
// relu(NaN) = NaN).
package main

import (
	"bytes"
	"fmt"
	"go/format"
	"math"
	"os"
	"strings"
)

type isa struct {
	name   string // prefix of the kernel names
	reg    string // "Z" or "Y"
	w      int    // floats per vector
	nregs  int    // vector registers
	unroll int    // vectors per main-loop iteration
	zmm    bool
}

var isas = []isa{
	{name: "avx512", reg: "Z", w: 16, nregs: 32, unroll: 2, zmm: true},
	{name: "avx2", reg: "Y", w: 8, nregs: 16, unroll: 2},
}

// constant is a float32 (or int32 for int) value broadcast to every lane.
type constant struct {
	name string
	bits uint32
}

func f32(name string, v float64) constant { return constant{name, math.Float32bits(float32(v))} }

// The exponential: Cephes' expf (x = k·ln2 + r with ln2 in two parts, e^r by
// a degree-5 minimax polynomial p as 1 + r + r²·p(r)), with 2^k applied as
// two powers of two (or by VSCALEFPS), so results that are subnormal or
// overflow round once, as a correctly rounded exp's would. The input is
// clamped to [-104, 89] first (NaN passes through): e^-104 rounds to 0 and
// e^89 to +Inf, and the reduction stays exact.
var (
	cSign   = constant{"sign", 0x80000000}
	cBias   = constant{"bias", 127}
	cLo     = f32("lo", -104)
	cHi     = f32("hi", 89)
	cLog2e  = f32("log2e", 1.44269504088896341)
	cNLn2Hi = f32("nln2hi", -0.693359375)
	cNLn2Lo = f32("nln2lo", 2.12194440e-4)
	cP0     = f32("p0", 1.9875691500e-4)
	cP1     = f32("p1", 1.3981999507e-3)
	cP2     = f32("p2", 8.3334519073e-3)
	cP3     = f32("p3", 4.1665795894e-2)
	cP4     = f32("p4", 1.6666665459e-1)
	cP5     = f32("p5", 5.0000001201e-1)
	cOne    = f32("one", 1)
	cZero   = f32("zero", 0)
	cThree  = f32("three", 3)
	cSix    = f32("six", 6)
)

// GELU's erf is Abramowitz and Stegun's 7.1.26, erf(z) = 1 - t·r(t)·e^-z²
// with t = 1/(1 + p|z|) and r of degree 4 (absolute error below 1.5e-7),
// with z's sign; gelu(x) = x/2 + x/2·erf(x/√2), in the additive form whose
// zeros have torch's signs (gelu(-0) = gelu(-10) = +0).
var (
	cAbs    = constant{"abs", 0x7fffffff}
	cSqrt12 = f32("sqrt1_2", 0.70710678118654752)
	cHalf   = f32("half", 0.5)
	cASP    = f32("asp", 0.3275911)
	cA1     = f32("a1", 0.254829592)
	cA2     = f32("a2", -0.284496736)
	cA3     = f32("a3", 1.421413741)
	cA4     = f32("a4", -1.453152027)
	cA5     = f32("a5", 1.061405429)
)

var allConsts = []constant{cSign, cBias, cLo, cHi, cLog2e, cNLn2Hi, cNLn2Lo, cP0, cP1, cP2, cP3, cP4, cP5, cOne, cZero, cThree, cSix,
	cAbs, cSqrt12, cHalf, cASP, cA1, cA2, cA3, cA4, cA5}

// kernel describes one generated function.
type kernel struct {
	act    string // identity, relu, relu6, silu, sigmoid, hardswish, hardsigmoid, gelu, exp
	affine bool   // x*scale+shift first
	scale  bool   // x*scale only
}

func (k kernel) goName(s isa) string {
	n := map[string]string{"identity": "", "relu": "ReLU", "relu6": "ReLU6", "silu": "SiLU", "sigmoid": "Sigmoid",
		"hardswish": "Hardswish", "hardsigmoid": "Hardsigmoid", "gelu": "GELU", "exp": "Exp"}[k.act]
	switch {
	case k.scale:
		return s.name + "Scale"
	case k.affine:
		return s.name + "Affine" + n
	}
	return s.name + n
}

var acts = []string{"relu", "relu6", "silu", "sigmoid", "hardswish", "hardsigmoid", "gelu"}

// unroll returns how many vectors a main-loop iteration of k handles on s:
// GELU's registers leave room for one.
func (k kernel) unroll(s isa) int {
	if k.act == "gelu" {
		return 1
	}
	return s.unroll
}

func kernels() []kernel {
	ks := []kernel{{act: "identity", affine: true}, {act: "identity", scale: true}, {act: "exp"}}
	for _, a := range acts {
		ks = append(ks, kernel{act: a}, kernel{act: a, affine: true})
	}
	return ks
}

// consts lists the constants k uses, and which of them must be in registers
// even for AVX2 (those an instruction needs as a register operand: the
// clamps' first Intel source, a dividend).
func (k kernel) consts() (all []constant, reg map[string]bool) {
	reg = map[string]bool{}
	switch k.act {
	case "exp", "silu", "sigmoid", "gelu":
		all = []constant{cLo, cHi, cLog2e, cNLn2Hi, cNLn2Lo, cP0, cP1, cP2, cP3, cP4, cP5, cOne, cBias}
		reg["lo"], reg["hi"] = true, true
		if k.act != "exp" {
			all = append(all, cSign)
		}
		if k.act == "sigmoid" {
			reg["one"] = true
		}
		if k.act == "gelu" {
			all = append(all, cAbs, cSqrt12, cHalf, cASP, cA1, cA2, cA3, cA4, cA5)
			reg["one"], reg["asp"] = true, true
		}
	case "relu":
		all = []constant{cZero}
		reg["zero"] = true
	case "relu6":
		all = []constant{cZero, cSix}
		reg["zero"], reg["six"] = true, true
	case "hardswish", "hardsigmoid":
		all = []constant{cZero, cThree, cSix}
		reg["zero"], reg["six"] = true, true
	}
	return all, reg
}

// lane holds one unrolled vector's registers: x is the value, a..e temporaries.
type lane struct{ x, a, b, c, d, e string }

type emitter struct {
	s     isa
	k     kernel
	regOf map[string]string // constant name -> register
}

// c returns the operand for constant name: its register, or for AVX2 the
// 32-byte vector in memory.
func (e *emitter) c(name string) string {
	if r, ok := e.regOf[name]; ok {
		return r
	}
	return "vec" + name + "<>(SB)"
}

// xor returns the bitwise XOR for the ISA's registers: VXORPS on 512-bit
// registers needs AVX512DQ, VPXORD only AVX512F.
func (e *emitter) xor() string {
	if e.s.zmm {
		return "VPXORD"
	}
	return "VXORPS"
}

// body returns the instructions that turn l.x into f(l.x).
func (e *emitter) body(l lane) []string {
	var o []string
	p := func(format string, args ...any) { o = append(o, fmt.Sprintf(format, args...)) }
	switch {
	case e.k.scale:
		p("VMULPS %s, %s, %s", e.c("scale"), l.x, l.x)
	case e.k.affine:
		p("VFMADD213PS %s, %s, %s", e.c("shift"), e.c("scale"), l.x) // x = scale*x + shift
	}
	exp := func(a string, t ...string) { // a = e^a, with t (default l.b, l.c, l.d) as temporaries
		l := l
		if len(t) == 3 {
			l.b, l.c, l.d = t[0], t[1], t[2]
		}
		p("VMAXPS %s, %s, %s", a, e.c("lo"), a)
		p("VMINPS %s, %s, %s", a, e.c("hi"), a)
		p("VMULPS %s, %s, %s", e.c("log2e"), a, l.b)
		if e.s.zmm {
			p("VRNDSCALEPS $0, %s, %s", l.b, l.b)
		} else {
			p("VROUNDPS $0, %s, %s", l.b, l.b)
		}
		p("VFMADD231PS %s, %s, %s", e.c("nln2hi"), l.b, a) // r = k*(-ln2hi) + x
		p("VFMADD231PS %s, %s, %s", e.c("nln2lo"), l.b, a)
		if e.s.zmm {
			p("VMOVAPS %s, %s", e.c("p0"), l.c)
		} else {
			p("VMOVUPS %s, %s", e.c("p0"), l.c)
		}
		for _, c := range []string{"p1", "p2", "p3", "p4", "p5"} {
			p("VFMADD213PS %s, %s, %s", e.c(c), a, l.c) // p = r*p + c
		}
		p("VMULPS %s, %s, %s", a, a, l.d)        // r²
		p("VFMADD213PS %s, %s, %s", a, l.d, l.c) // r²·p + r
		p("VADDPS %s, %s, %s", e.c("one"), l.c, l.c)
		if e.s.zmm {
			p("VSCALEFPS %s, %s, %s", l.b, l.c, a)
			return
		}
		p("VCVTPS2DQ %s, %s", l.b, l.b)
		p("VPSRAD $1, %s, %s", l.b, l.d)      // k1 = k>>1
		p("VPSUBD %s, %s, %s", l.d, l.b, l.b) // k2 = k - k1
		p("VPADDD %s, %s, %s", e.c("bias"), l.d, l.d)
		p("VPSLLD $23, %s, %s", l.d, l.d)
		p("VPADDD %s, %s, %s", e.c("bias"), l.b, l.b)
		p("VPSLLD $23, %s, %s", l.b, l.b)
		p("VMULPS %s, %s, %s", l.d, l.c, l.c)
		p("VMULPS %s, %s, %s", l.b, l.c, a)
	}
	switch e.k.act {
	case "exp":
		exp(l.x)
	case "silu", "sigmoid": // torch: x/(1+e^-x) and 1/(1+e^-x)
		p("%s %s, %s, %s", e.xor(), e.c("sign"), l.x, l.a)
		exp(l.a)
		p("VADDPS %s, %s, %s", e.c("one"), l.a, l.a)
		if e.k.act == "silu" {
			p("VDIVPS %s, %s, %s", l.a, l.x, l.x)
		} else {
			p("VDIVPS %s, %s, %s", l.a, e.c("one"), l.x)
		}
	case "gelu":
		and := "VANDPS"
		if e.s.zmm {
			and = "VPANDD" // VANDPS on 512-bit registers needs AVX512DQ
		}
		p("VMULPS %s, %s, %s", e.c("sqrt1_2"), l.x, l.a) // z
		p("%s %s, %s, %s", and, e.c("abs"), l.a, l.a)    // |z|
		p("VMULPS %s, %s, %s", l.a, l.a, l.b)            // z²
		p("%s %s, %s, %s", e.xor(), e.c("sign"), l.b, l.b)
		p("VFMADD213PS %s, %s, %s", e.c("one"), e.c("asp"), l.a) // 1 + p|z|
		p("VDIVPS %s, %s, %s", l.a, e.c("one"), l.a)             // t
		exp(l.b, l.c, l.d, l.e)                                  // e^-z²
		if e.s.zmm {
			p("VMOVAPS %s, %s", e.c("a5"), l.c)
		} else {
			p("VMOVUPS %s, %s", e.c("a5"), l.c)
		}
		for _, c := range []string{"a4", "a3", "a2", "a1"} {
			p("VFMADD213PS %s, %s, %s", e.c(c), l.a, l.c) // r = t*r + c
		}
		p("VMULPS %s, %s, %s", l.a, l.b, l.b)              // t·e^-z²
		p("VFNMADD213PS %s, %s, %s", e.c("one"), l.c, l.b) // erf|z| = 1 - r·t·e^-z²
		p("%s %s, %s, %s", and, e.c("sign"), l.x, l.d)
		p("%s %s, %s, %s", e.xor(), l.d, l.b, l.b) // erf(z)
		p("VMULPS %s, %s, %s", e.c("half"), l.x, l.x)
		p("VFMADD231PS %s, %s, %s", l.b, l.x, l.x) // x/2 + x/2·erf
	case "relu":
		p("VMAXPS %s, %s, %s", l.x, e.c("zero"), l.x)
	case "relu6":
		p("VMAXPS %s, %s, %s", l.x, e.c("zero"), l.x)
		p("VMINPS %s, %s, %s", l.x, e.c("six"), l.x)
	case "hardsigmoid": // torch: min(max(x+3, 0), 6)/6
		p("VADDPS %s, %s, %s", e.c("three"), l.x, l.x)
		p("VMAXPS %s, %s, %s", l.x, e.c("zero"), l.x)
		p("VMINPS %s, %s, %s", l.x, e.c("six"), l.x)
		p("VDIVPS %s, %s, %s", e.c("six"), l.x, l.x)
	case "hardswish": // torch: x*min(max(x+3, 0), 6)/6
		p("VADDPS %s, %s, %s", e.c("three"), l.x, l.a)
		p("VMAXPS %s, %s, %s", l.a, e.c("zero"), l.a)
		p("VMINPS %s, %s, %s", l.a, e.c("six"), l.a)
		p("VMULPS %s, %s, %s", l.a, l.x, l.x)
		p("VDIVPS %s, %s, %s", e.c("six"), l.x, l.x)
	}
	return o
}

func gen(w *bytes.Buffer, s isa, k kernel) {
	p := func(format string, args ...any) { fmt.Fprintf(w, "\t"+format+"\n", args...) }
	label := func(l string) { fmt.Fprintf(w, "%s:\n", l) }
	name := k.goName(s)
	fmt.Fprintf(w, "\n// func %s(dst, src *float32, n int, scale, shift float32)\n", name)
	fmt.Fprintf(w, "TEXT ·%s(SB), NOSPLIT, $0-32\n", name)
	e := &emitter{s: s, k: k, regOf: map[string]string{}}
	p("MOVQ dst+0(FP), DI")
	p("MOVQ src+8(FP), SI")
	p("MOVQ n+16(FP), CX")

	next := 0
	alloc := func() string {
		r := fmt.Sprintf("%s%d", s.reg, next)
		next++
		if next > s.nregs {
			panic(fmt.Sprintf("%s: out of registers", name))
		}
		return r
	}
	if k.affine || k.scale {
		e.regOf["scale"] = alloc()
		p("VBROADCASTSS scale+24(FP), %s", e.regOf["scale"])
	}
	if k.affine {
		e.regOf["shift"] = alloc()
		p("VBROADCASTSS shift+28(FP), %s", e.regOf["shift"])
	}
	all, reg := k.consts()
	for _, c := range all {
		if s.zmm && c.name == "bias" {
			continue // VSCALEFPS needs no exponent bias
		}
		if s.zmm || reg[c.name] {
			r := alloc()
			e.regOf[c.name] = r
			if c.name == "zero" {
				p("%s %s, %s, %s", e.xor(), r, r, r)
			} else {
				p("VBROADCASTSS vec%s<>(SB), %s", c.name, r)
			}
		}
	}
	unroll := k.unroll(s)
	lanes := make([]lane, unroll)
	for i := range lanes {
		lanes[i] = lane{x: alloc(), a: alloc(), b: alloc(), c: alloc(), d: alloc()}
		if k.act == "gelu" {
			lanes[i].e = alloc()
		}
	}
	mask := ""
	if !s.zmm {
		mask = alloc() // the tail's VMASKMOVPS mask
	}
	vb := s.w * 4

	// Main loop: unroll vectors at a time, their instructions interleaved.
	label("loop")
	p("CMPQ CX, $%d", unroll*s.w)
	p("JLT single")
	for i, l := range lanes {
		p("VMOVUPS %d(SI), %s", i*vb, l.x)
	}
	bodies := make([][]string, len(lanes))
	for i, l := range lanes {
		bodies[i] = e.body(l)
	}
	for j := range bodies[0] {
		for i := range bodies {
			p("%s", bodies[i][j])
		}
	}
	for i, l := range lanes {
		p("VMOVUPS %s, %d(DI)", l.x, i*vb)
	}
	p("ADDQ $%d, SI", unroll*vb)
	p("ADDQ $%d, DI", unroll*vb)
	p("SUBQ $%d, CX", unroll*s.w)
	p("JMP loop")

	l := lanes[0]
	label("single")
	p("CMPQ CX, $%d", s.w)
	p("JLT tail")
	p("VMOVUPS (SI), %s", l.x)
	for _, ins := range e.body(l) {
		p("%s", ins)
	}
	p("VMOVUPS %s, (DI)", l.x)
	p("ADDQ $%d, SI", vb)
	p("ADDQ $%d, DI", vb)
	p("SUBQ $%d, CX", s.w)
	p("JMP single")

	// Tail: the last n < W elements, through a mask.
	label("tail")
	p("TESTQ CX, CX")
	p("JZ done")
	if s.zmm {
		p("MOVL $1, AX")
		p("SHLL CX, AX")
		p("DECL AX")
		p("KMOVW AX, K1")
		p("VMOVUPS.Z (SI), K1, %s", l.x)
	} else {
		p("LEAQ vecmask<>+32(SB), AX")
		p("SHLQ $2, CX")
		p("SUBQ CX, AX")
		p("VMOVDQU (AX), %s", mask)
		p("VMASKMOVPS (SI), %s, %s", mask, l.x)
	}
	for _, ins := range e.body(l) {
		p("%s", ins)
	}
	if s.zmm {
		p("VMOVUPS %s, K1, (DI)", l.x)
	} else {
		p("VMASKMOVPS %s, %s, (DI)", l.x, mask)
	}
	label("done")
	p("VZEROUPPER")
	p("RET")
}

func main() {
	var w bytes.Buffer
	w.WriteString("// Code generated by gen_vec.go; DO NOT EDIT.\n\n")
	w.WriteString("//go:build amd64 && !purego\n\n#include \"textflag.h\"\n\n")
	for _, c := range allConsts {
		for i := range 8 {
			fmt.Fprintf(&w, "DATA vec%s<>+%d(SB)/4, $0x%08x\n", c.name, 4*i, c.bits)
		}
		fmt.Fprintf(&w, "GLOBL vec%s<>(SB), RODATA|NOPTR, $32\n\n", c.name)
	}
	// vecmask: eight all-ones lanes then eight zero lanes; the 8 lanes from
	// +32-4n have the first n set.
	for i := range 16 {
		v := uint32(0)
		if i < 8 {
			v = 0xffffffff
		}
		fmt.Fprintf(&w, "DATA vecmask<>+%d(SB)/4, $0x%08x\n", 4*i, v)
	}
	w.WriteString("GLOBL vecmask<>(SB), RODATA|NOPTR, $64\n")
	for _, s := range isas {
		for _, k := range kernels() {
			gen(&w, s, k)
		}
	}
	write("vec_amd64.s", w.Bytes())

	var g bytes.Buffer
	g.WriteString("// Code generated by gen_vec.go; DO NOT EDIT.\n\n//go:build amd64 && !purego\n\npackage vec\n")
	for _, s := range isas {
		for _, k := range kernels() {
			fmt.Fprintf(&g, "\n//go:noescape\nfunc %s(dst, src *float32, n int, scale, shift float32)\n", k.goName(s))
		}
	}
	for _, s := range isas {
		fmt.Fprintf(&g, "\n// %sKernels are the %s kernels.\nvar %sKernels = &kernels{\n\tname: %q,\n", s.name, strings.ToUpper(s.name), s.name, s.name)
		fmt.Fprintf(&g, "\tscale: asm(%s),\n\texp: asm(%s),\n", kernel{act: "identity", scale: true}.goName(s), kernel{act: "exp"}.goName(s))
		fmt.Fprintf(&g, "\tplain: [numActs]kernelFn{Identity: copyKernel")
		for _, a := range acts {
			fmt.Fprintf(&g, ", %s: asm(%s)", actConst(a), kernel{act: a}.goName(s))
		}
		fmt.Fprintf(&g, "},\n\taffine: [numActs]kernelFn{Identity: asm(%s)", kernel{act: "identity", affine: true}.goName(s))
		for _, a := range acts {
			fmt.Fprintf(&g, ", %s: asm(%s)", actConst(a), kernel{act: a, affine: true}.goName(s))
		}
		g.WriteString("},\n}\n")
	}
	src, err := format.Source(g.Bytes())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	write("vec_kernels_amd64.go", src)
}

func actConst(a string) string {
	return map[string]string{"relu": "ReLU", "relu6": "ReLU6", "silu": "SiLU", "sigmoid": "Sigmoid",
		"hardswish": "Hardswish", "hardsigmoid": "Hardsigmoid", "gelu": "GELU"}[a]
}

func write(name string, b []byte) {
	if err := os.WriteFile(name, b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
