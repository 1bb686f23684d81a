package onnximport

import (
	"fmt"
	"math"

	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/graph"
)

// Elementwise operators: math functions, arithmetic with numpy
// broadcasting, comparisons and logic, activations.

func one(v *graph.Value) []*graph.Value { return []*graph.Value{v} }

func unaryOp(f func(float64) float64, df func(x, y float64) float64) builder {
	return func(c *nodeCtx) (graph.Kernel, error) {
		return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
			return one(unary(in[0], f, df)), nil
		}, nil
	}
}

// nnUnary uses nn's own op for float32 (fast, autograd) and f otherwise.
func nnUnary(op func(*nn.Tensor) *nn.Tensor, f func(float64) float64) builder {
	return func(c *nodeCtx) (graph.Kernel, error) {
		return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
			if t := in[0].Tensor(); t != nil {
				return one(graph.FromTensor(op(t))), nil
			}
			return one(unary(in[0], f, nil)), nil
		}, nil
	}
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// zeroGrad is the derivative of a piecewise-constant op (Floor, Ceil,
// Round, Sign): zero, as torch's backward gives, so that gradients reach
// the ops' other users instead of stopping the graph.
func zeroGrad(_, _ float64) float64 { return 0 }

func init() {
	register(unaryOp(math.Abs, func(x, _ float64) float64 { return sign(x) }), "Abs")
	register(unaryOp(func(x float64) float64 { return -x }, func(_, _ float64) float64 { return -1 }), "Neg")
	register(unaryOp(math.Exp, func(_, y float64) float64 { return y }), "Exp")
	register(unaryOp(math.Log, func(x, _ float64) float64 { return 1 / x }), "Log")
	register(unaryOp(math.Sqrt, func(_, y float64) float64 { return 0.5 / y }), "Sqrt")
	register(unaryOp(func(x float64) float64 { return 1 / x }, func(_, y float64) float64 { return -y * y }), "Reciprocal")
	register(unaryOp(math.Floor, zeroGrad), "Floor")
	register(unaryOp(math.Ceil, zeroGrad), "Ceil")
	register(unaryOp(math.RoundToEven, zeroGrad), "Round")
	register(unaryOp(sign, zeroGrad), "Sign")
	register(unaryOp(math.Sin, func(x, _ float64) float64 { return math.Cos(x) }), "Sin")
	register(unaryOp(math.Cos, func(x, _ float64) float64 { return -math.Sin(x) }), "Cos")
	register(unaryOp(math.Tan, func(_, y float64) float64 { return 1 + y*y }), "Tan")
	register(unaryOp(math.Asin, func(x, _ float64) float64 { return 1 / math.Sqrt(1-x*x) }), "Asin")
	register(unaryOp(math.Acos, func(x, _ float64) float64 { return -1 / math.Sqrt(1-x*x) }), "Acos")
	register(unaryOp(math.Atan, func(x, _ float64) float64 { return 1 / (1 + x*x) }), "Atan")
	register(unaryOp(math.Sinh, func(x, _ float64) float64 { return math.Cosh(x) }), "Sinh")
	register(unaryOp(math.Cosh, func(x, _ float64) float64 { return math.Sinh(x) }), "Cosh")
	register(unaryOp(math.Asinh, func(x, _ float64) float64 { return 1 / math.Sqrt(x*x+1) }), "Asinh")
	register(unaryOp(math.Acosh, func(x, _ float64) float64 { return 1 / math.Sqrt(x*x-1) }), "Acosh")
	register(unaryOp(math.Atanh, func(x, _ float64) float64 { return 1 / (1 - x*x) }), "Atanh")
	register(unaryOp(math.Erf, func(x, _ float64) float64 { return 2 / math.Sqrt(math.Pi) * math.Exp(-x*x) }), "Erf")
	register(nnUnary((*nn.Tensor).Tanh, math.Tanh), "Tanh")
	register(nnUnary((*nn.Tensor).Sigmoid, sigmoid), "Sigmoid")
	register(nnUnary((*nn.Tensor).ReLU, func(x float64) float64 { return math.Max(x, 0) }), "Relu")
	register(unaryOp(func(x float64) float64 { return x / (1 + math.Abs(x)) }, func(x, _ float64) float64 { return 1 / ((1 + math.Abs(x)) * (1 + math.Abs(x))) }), "Softsign")
	register(unaryOp(func(x float64) float64 {
		if x > 20 {
			return x
		}
		return math.Log1p(math.Exp(x))
	}, func(x, _ float64) float64 { return sigmoid(x) }), "Softplus")
	register(nnUnary((*nn.Tensor).Hardswish, func(x float64) float64 { return x * math.Max(0, math.Min(1, x/6+0.5)) }), "HardSwish")
	register(buildIsInf, "IsInf")
	register(buildNot, "Not")
	register(buildAct, "LeakyRelu", "Elu", "Selu", "Celu", "HardSigmoid", "ThresholdedRelu", "Shrink", "Gelu")
	register(buildArith, "Add", "Sub", "Mul", "Div", "Pow", "Mod", "BitShift")
	register(buildCompare, "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual")
	register(buildLogic, "And", "Or", "Xor")
	register(buildVariadic, "Max", "Min", "Sum", "Mean")
	register(buildClip, "Clip")
	register(buildPRelu, "PRelu")
	register(buildWhere, "Where")
	register(buildCast, "Cast", "CastLike")
	register(func(c *nodeCtx) (graph.Kernel, error) {
		return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) { return one(in[0]), nil }, nil
	}, "Identity")
}

func sign(x float64) float64 {
	switch {
	case x > 0:
		return 1
	case x < 0:
		return -1
	}
	return x
}

func buildIsInf(c *nodeCtx) (graph.Kernel, error) {
	pos, neg := c.int("detect_positive", 1) != 0, c.int("detect_negative", 1) != 0
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x := in[0].Float64s()
		d := make([]int64, len(x))
		for k, e := range x {
			d[k] = b2i(pos && math.IsInf(e, 1) || neg && math.IsInf(e, -1))
		}
		return one(graph.FromInt64s(graph.Bool, in[0].Shape(), d)), nil
	}, nil
}

func buildNot(c *nodeCtx) (graph.Kernel, error) {
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x := in[0].Int64s()
		d := make([]int64, len(x))
		for k, e := range x {
			d[k] = b2i(e == 0)
		}
		return one(graph.FromInt64s(graph.Bool, in[0].Shape(), d)), nil
	}, nil
}

func buildAct(c *nodeCtx) (graph.Kernel, error) {
	var f func(float64) float64
	var df func(x, y float64) float64
	var fast func(*nn.Tensor) *nn.Tensor
	switch c.n.OpType {
	case "LeakyRelu":
		a := float64(c.float("alpha", 0.01))
		f = func(x float64) float64 {
			if x < 0 {
				return a * x
			}
			return x
		}
		df = func(x, _ float64) float64 {
			if x < 0 {
				return a
			}
			return 1
		}
		fast = func(t *nn.Tensor) *nn.Tensor { return t.LeakyReLU(float32(a)) }
	case "Elu", "Celu":
		a := float64(c.float("alpha", 1))
		celu := c.n.OpType == "Celu"
		f = func(x float64) float64 {
			if x > 0 {
				return x
			}
			if celu {
				return a * (math.Exp(x/a) - 1)
			}
			return a * (math.Exp(x) - 1)
		}
		df = func(x, y float64) float64 {
			if x > 0 {
				return 1
			}
			if celu {
				return math.Exp(x / a)
			}
			return y + a
		}
	case "Selu":
		a := float64(c.float("alpha", 1.67326319217681884765625))
		g := float64(c.float("gamma", 1.05070102214813232421875))
		f = func(x float64) float64 {
			if x > 0 {
				return g * x
			}
			return g * a * (math.Exp(x) - 1)
		}
		df = func(x, _ float64) float64 {
			if x > 0 {
				return g
			}
			return g * a * math.Exp(x)
		}
	case "HardSigmoid":
		a, b := float64(c.float("alpha", 0.2)), float64(c.float("beta", 0.5))
		f = func(x float64) float64 { return math.Max(0, math.Min(1, a*x+b)) }
		if float32(a) == float32(1.0/6) && b == 0.5 {
			// torch's hardsigmoid, relu6(x + 3) / 6, as it exports it (and
			// as the fusion pass runs it after a convolution).
			fast = (*nn.Tensor).Hardsigmoid
		}
		df = func(x, _ float64) float64 {
			if v := a*x + b; v > 0 && v < 1 {
				return a
			}
			return 0
		}
	case "ThresholdedRelu":
		a := float64(c.float("alpha", 1))
		f = func(x float64) float64 {
			if x > a {
				return x
			}
			return 0
		}
		df = func(x, _ float64) float64 { return b2f(x > a) }
	case "Shrink":
		l, b := float64(c.float("lambd", 0.5)), float64(c.float("bias", 0))
		f = func(x float64) float64 {
			switch {
			case x < -l:
				return x + b
			case x > l:
				return x - b
			}
			return 0
		}
		df = func(x, _ float64) float64 { return b2f(x < -l || x > l) }
	case "Gelu":
		approx := c.str("approximate", "none")
		if approx != "none" && approx != "tanh" {
			return nil, c.unsupported("approximate %q", approx)
		}
		fast = func(t *nn.Tensor) *nn.Tensor { return t.GELU(approx) }
		f = func(x float64) float64 {
			if approx == "tanh" {
				return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
			}
			return 0.5 * x * (1 + math.Erf(x/math.Sqrt2))
		}
	}
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		if t := in[0].Tensor(); t != nil && fast != nil {
			return one(graph.FromTensor(fast(t))), nil
		}
		return one(unary(in[0], f, df)), nil
	}, nil
}

// squareExponent reports whether b is a constant exponent of 2 that does
// not broadcast x (of rank r) to a larger shape.
func squareExponent(b *graph.Value, r int) bool {
	if b.Numel() != 1 || b.Rank() > r || b.Float64s()[0] != 2 {
		return false
	}
	t := b.Tensor()
	return t == nil || !t.RequiresGrad()
}

func floorMod(x, y float64) float64 {
	m := math.Mod(x, y)
	if m != 0 && (m < 0) != (y < 0) {
		m += y
	}
	return m
}

func buildArith(c *nodeCtx) (graph.Kernel, error) {
	if c.opset < 7 && c.has("broadcast") {
		return nil, c.unsupported("legacy broadcast attribute")
	}
	op := c.n.OpType
	var s binSpec
	var fast func(a, b *nn.Tensor) *nn.Tensor
	switch op {
	case "Add":
		s = binSpec{f: func(x, y float64) float64 { return x + y }, fi: func(x, y int64) int64 { return x + y },
			da: func(_, _, _ float64) float64 { return 1 }, db: func(_, _, _ float64) float64 { return 1 }}
		fast = (*nn.Tensor).Add
	case "Sub":
		s = binSpec{f: func(x, y float64) float64 { return x - y }, fi: func(x, y int64) int64 { return x - y },
			da: func(_, _, _ float64) float64 { return 1 }, db: func(_, _, _ float64) float64 { return -1 }}
		fast = (*nn.Tensor).Sub
	case "Mul":
		s = binSpec{f: func(x, y float64) float64 { return x * y }, fi: func(x, y int64) int64 { return x * y },
			da: func(_, y, _ float64) float64 { return y }, db: func(x, _, _ float64) float64 { return x }}
		fast = (*nn.Tensor).Mul
	case "Div":
		s = binSpec{f: func(x, y float64) float64 { return x / y }, fi: func(x, y int64) int64 {
			if y == 0 {
				return 0
			}
			return x / y
		},
			da: func(_, y, _ float64) float64 { return 1 / y }, db: func(x, y, _ float64) float64 { return -x / (y * y) }}
		fast = (*nn.Tensor).Div
	case "Pow":
		s = binSpec{f: math.Pow, fi: func(x, y int64) int64 { return int64(math.Pow(float64(x), float64(y))) },
			da: func(x, y, _ float64) float64 { return y * math.Pow(x, y-1) },
			db: func(x, _, z float64) float64 {
				if x <= 0 {
					return 0
				}
				return z * math.Log(x)
			}}
	case "Mod":
		fmod := c.int("fmod", 0) != 0
		if fmod {
			s = binSpec{f: math.Mod, fi: func(x, y int64) int64 {
				if y == 0 {
					return 0
				}
				return x % y
			}, da: func(_, _, _ float64) float64 { return 1 }, db: func(x, y, _ float64) float64 { return -math.Trunc(x / y) }}
		} else {
			s = binSpec{f: floorMod, fi: func(x, y int64) int64 {
				if y == 0 {
					return 0
				}
				m := x % y
				if m != 0 && (m < 0) != (y < 0) {
					m += y
				}
				return m
			}, da: func(_, _, _ float64) float64 { return 1 }, db: func(x, y, _ float64) float64 { return -math.Floor(x / y) }}
		}
	case "BitShift":
		left := c.str("direction", "") == "LEFT"
		s = binSpec{fi: func(x, y int64) int64 {
			if y >= 64 {
				return 0
			}
			if left {
				return int64(uint64(x) << uint64(y))
			}
			return int64(uint64(x) >> uint64(y))
		}, f: func(x, y float64) float64 { return math.NaN() }}
	}
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		a, b := in[0], in[1]
		if op == "Pow" && a.DType() != b.DType() {
			b = b.Cast(a.DType())
		}
		if a.DType() != b.DType() {
			return nil, fmt.Errorf("operand types %s and %s differ", a.DType(), b.DType())
		}
		if fast != nil && a.Tensor() != nil {
			return one(graph.FromTensor(fast(a.Tensor(), b.Tensor()))), nil
		}
		if op == "Pow" && a.Tensor() != nil && squareExponent(b, a.Rank()) {
			// x^2 of LayerNorm's variance (exports before opset 17): x*x,
			// which is what math.Pow(x, 2) rounds to, on nn's float32 path.
			return one(graph.FromTensor(a.Tensor().Square())), nil
		}
		if op == "Pow" && a.DType().IsInt() {
			xa, xb := a.Int64s(), b.Int64s()
			_ = xa
			_ = xb
		}
		r, err := binop(a, b, s)
		if err != nil {
			return nil, err
		}
		return one(r), nil
	}, nil
}

func buildCompare(c *nodeCtx) (graph.Kernel, error) {
	var f func(x, y float64) bool
	var fi func(x, y int64) bool
	switch c.n.OpType {
	case "Equal":
		f, fi = func(x, y float64) bool { return x == y }, func(x, y int64) bool { return x == y }
	case "Less":
		f, fi = func(x, y float64) bool { return x < y }, func(x, y int64) bool { return x < y }
	case "Greater":
		f, fi = func(x, y float64) bool { return x > y }, func(x, y int64) bool { return x > y }
	case "LessOrEqual":
		f, fi = func(x, y float64) bool { return x <= y }, func(x, y int64) bool { return x <= y }
	case "GreaterOrEqual":
		f, fi = func(x, y float64) bool { return x >= y }, func(x, y int64) bool { return x >= y }
	}
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		a, b := in[0], in[1]
		if a.DType() != b.DType() {
			return nil, fmt.Errorf("operand types %s and %s differ", a.DType(), b.DType())
		}
		s := binSpec{out: graph.Bool, f: func(x, y float64) float64 { return b2f(f(x, y)) }}
		if a.DType() == graph.Uint64 {
			s.fi = func(x, y int64) int64 {
				return b2i(fi(int64(uint64(x)>>1), int64(uint64(y)>>1)) || (uint64(x)>>1 == uint64(y)>>1 && fi(x&1, y&1)))
			}
		} else {
			s.fi = func(x, y int64) int64 { return b2i(fi(x, y)) }
		}
		r, err := binop(a, b, s)
		if err != nil {
			return nil, err
		}
		return one(r), nil
	}, nil
}

func buildLogic(c *nodeCtx) (graph.Kernel, error) {
	var fi func(x, y bool) bool
	switch c.n.OpType {
	case "And":
		fi = func(x, y bool) bool { return x && y }
	case "Or":
		fi = func(x, y bool) bool { return x || y }
	case "Xor":
		fi = func(x, y bool) bool { return x != y }
	}
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		r, err := binop(in[0], in[1], binSpec{out: graph.Bool, fi: func(x, y int64) int64 { return b2i(fi(x != 0, y != 0)) },
			f: func(x, y float64) float64 { return b2f(fi(x != 0, y != 0)) }})
		if err != nil {
			return nil, err
		}
		return one(r), nil
	}, nil
}

func buildVariadic(c *nodeCtx) (graph.Kernel, error) {
	op := c.n.OpType
	var s binSpec
	switch op {
	case "Max":
		s = binSpec{f: func(x, y float64) float64 {
			if math.IsNaN(x) || math.IsNaN(y) {
				return math.NaN()
			}
			return math.Max(x, y)
		}, fi: func(x, y int64) int64 { return max(x, y) },
			da: func(x, y, _ float64) float64 { return b2f(x >= y) }, db: func(x, y, _ float64) float64 { return b2f(y > x) }}
	case "Min":
		s = binSpec{f: func(x, y float64) float64 {
			if math.IsNaN(x) || math.IsNaN(y) {
				return math.NaN()
			}
			return math.Min(x, y)
		}, fi: func(x, y int64) int64 { return min(x, y) },
			da: func(x, y, _ float64) float64 { return b2f(x <= y) }, db: func(x, y, _ float64) float64 { return b2f(y < x) }}
	default:
		s = binSpec{f: func(x, y float64) float64 { return x + y }, fi: func(x, y int64) int64 { return x + y },
			da: func(_, _, _ float64) float64 { return 1 }, db: func(_, _, _ float64) float64 { return 1 }}
	}
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		acc := in[0]
		for _, v := range in[1:] {
			if v.DType() != acc.DType() {
				return nil, fmt.Errorf("operand types %s and %s differ", acc.DType(), v.DType())
			}
			var err error
			if s.da != nil && op == "Sum" || op == "Mean" {
				if acc.Tensor() != nil {
					sh, err := broadcast(acc.Shape(), v.Shape())
					if err != nil {
						return nil, err
					}
					_ = sh
					acc = graph.FromTensor(acc.Tensor().Add(v.Tensor()))
					continue
				}
			}
			acc, err = binop(acc, v, s)
			if err != nil {
				return nil, err
			}
		}
		if op == "Mean" {
			n := float64(len(in))
			acc = unary(acc, func(x float64) float64 { return x / n }, func(_, _ float64) float64 { return 1 / n })
		}
		return one(acc), nil
	}, nil
}

func buildClip(c *nodeCtx) (graph.Kernel, error) {
	attrMin, attrMax := float64(c.float("min", float32(math.Inf(-1)))), float64(c.float("max", float32(math.Inf(1))))
	opset := c.opset
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		lo, hi := attrMin, attrMax
		x := in[0]
		if opset >= 11 {
			lo, hi = math.Inf(-1), math.Inf(1)
			if x.DType().IsInt() {
				lo, hi = -9.3e18, 9.3e18
			}
			if len(in) > 1 && in[1] != nil {
				lo = in[1].Float64s()[0]
			}
			if len(in) > 2 && in[2] != nil {
				hi = in[2].Float64s()[0]
			}
		}
		if x.DType().IsInt() {
			xi := x.Int64s()
			d := make([]int64, len(xi))
			for k, e := range xi {
				f := float64(e)
				switch {
				case f < lo:
					d[k] = int64(lo)
				case f > hi:
					d[k] = int64(hi)
				default:
					d[k] = e
				}
			}
			return one(graph.FromInt64s(x.DType(), x.Shape(), d)), nil
		}
		if t := x.Tensor(); t != nil && !math.IsNaN(lo) && !math.IsNaN(hi) {
			// nn's Clamp (vectorized, with autograd); bounds rounded to float32
			// as ONNX Runtime compares in the input's type.
			return one(graph.FromTensor(t.Clamp(float32(lo), float32(hi)))), nil
		}
		return one(unary(x, func(v float64) float64 { return math.Min(math.Max(v, lo), hi) },
			func(v, _ float64) float64 { return b2f(v >= lo && v <= hi) })), nil
	}, nil
}

func buildPRelu(c *nodeCtx) (graph.Kernel, error) {
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		r, err := binop(in[0], in[1], binSpec{
			f: func(x, a float64) float64 {
				if x < 0 {
					return a * x
				}
				return x
			},
			fi: func(x, a int64) int64 {
				if x < 0 {
					return a * x
				}
				return x
			},
			da: func(x, a, _ float64) float64 {
				if x < 0 {
					return a
				}
				return 1
			},
			db: func(x, _, _ float64) float64 { return math.Min(x, 0) },
		})
		if err != nil {
			return nil, err
		}
		return one(r), nil
	}, nil
}

func buildWhere(c *nodeCtx) (graph.Kernel, error) {
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		cond, a, b := in[0], in[1], in[2]
		if a.DType() != b.DType() {
			return nil, fmt.Errorf("operand types %s and %s differ", a.DType(), b.DType())
		}
		shape, err := broadcast(cond.Shape(), a.Shape(), b.Shape())
		if err != nil {
			return nil, err
		}
		ca, cb := expandTo(a, shape), expandTo(b, shape)
		m := expandTo(cond, shape).Int64s()
		if ta := ca.Tensor(); ta != nil {
			tb := cb.Tensor()
			mask := make([]float32, len(m))
			inv := make([]float32, len(m))
			for k, e := range m {
				if e != 0 {
					mask[k] = 1
				} else {
					inv[k] = 1
				}
			}
			// a*mask + b*(1-mask) would turn inf*0 into NaN; select instead.
			xa, xb := ta.Data(), tb.Data()
			d := make([]float32, len(m))
			for k := range d {
				if m[k] != 0 {
					d[k] = xa[k]
				} else {
					d[k] = xb[k]
				}
			}
			out := nn.Record(nn.New(d, shape...), "Where", []*nn.Tensor{ta, tb}, func(g []float32) [][]float32 {
				ga, gb := make([]float32, len(g)), make([]float32, len(g))
				for k := range g {
					ga[k], gb[k] = g[k]*mask[k], g[k]*inv[k]
				}
				return [][]float32{ga, gb}
			})
			return one(graph.FromTensor(out)), nil
		}
		if a.DType().IsFloat() {
			xa, xb := ca.Float64s(), cb.Float64s()
			d := make([]float64, len(m))
			for k := range d {
				if m[k] != 0 {
					d[k] = xa[k]
				} else {
					d[k] = xb[k]
				}
			}
			return one(graph.FromFloat64s(a.DType(), shape, d)), nil
		}
		xa, xb := ca.Int64s(), cb.Int64s()
		d := make([]int64, len(m))
		for k := range d {
			if m[k] != 0 {
				d[k] = xa[k]
			} else {
				d[k] = xb[k]
			}
		}
		return one(graph.FromInt64s(a.DType(), shape, d)), nil
	}, nil
}

func buildCast(c *nodeCtx) (graph.Kernel, error) {
	like := c.n.OpType == "CastLike"
	var to graph.DType
	if !like {
		t := onnxDataType(c.int("to", 0))
		var ok bool
		to, ok = dtypeOf(t)
		if !ok {
			return nil, c.unsupported("to=%s", t)
		}
	}
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		dt := to
		if like {
			dt = in[1].DType()
		}
		x := in[0]
		if x.DType() == graph.Float32 && dt == graph.Float32 {
			return one(x), nil
		}
		if x.DType() == graph.Float32 && dt.IsFloat() {
			// float32 -> float16/bfloat16/double: round from the float32 values.
			return one(graph.FromFloat64s(dt, x.Shape(), x.Float64s())), nil
		}
		return one(x.Cast(dt)), nil
	}, nil
}
