package gemm_test

import (
	"fmt"

	"github.com/ckptkit/ckpt/nn/gemm"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/gonum"
)

// C = A*B for a 2×3 A and a 3×2 B, row-major with tight strides.
func ExampleSgemm() {
	a := []float32{
		1, 2, 3,
		4, 5, 6,
	}
	b := []float32{
		7, 8,
		9, 10,
		11, 12,
	}
	c := make([]float32, 2*2)
	gemm.Sgemm(false, false, 2, 2, 3, 1, a, 3, b, 2, 0, c, 2)
	fmt.Println(c)
	// Output: [58 64 139 154]
}

// Transposed operands and accumulation: C = 2*Aᵀ*B + C, where A is stored
// 3×2 (so op(A) = Aᵀ is 2×3).
func ExampleSgemm_transposed() {
	a := []float32{
		1, 4,
		2, 5,
		3, 6,
	}
	b := []float32{
		7, 8,
		9, 10,
		11, 12,
	}
	c := []float32{1, 1, 1, 1}
	gemm.Sgemm(true, false, 2, 2, 3, 2, a, 2, b, 2, 1, c, 2)
	fmt.Println(c)
	// Output: [117 129 279 309]
}

// Pin the thread count, for instance to benchmark one core.
func ExampleSetThreads() {
	gemm.SetThreads(1)
	fmt.Println(gemm.Threads())
	gemm.SetThreads(0) // back to GOMAXPROCS
	// Output: 1
}

// Make gonum's blas32 (and what is built on it) use this package's Sgemm.
func ExampleImplementation() {
	blas32.Use(gemm.Implementation{})
	defer blas32.Use(gonum.Implementation{})

	a := blas32.General{Rows: 1, Cols: 2, Stride: 2, Data: []float32{1, 2}}
	b := blas32.General{Rows: 2, Cols: 1, Stride: 1, Data: []float32{3, 4}}
	c := blas32.General{Rows: 1, Cols: 1, Stride: 1, Data: []float32{0}}
	blas32.Gemm(blas.NoTrans, blas.NoTrans, 1, a, b, 0, c)
	fmt.Println(c.Data)
	// Output: [11]
}

// Pack a layer's weights once, then multiply them by each input.
func ExamplePackA() {
	w := []float32{ // 2 outputs × 3 inputs
		1, 0, -1,
		2, 1, 0,
	}
	pw := gemm.PackA(false, 2, 3, w, 3)
	x := []float32{ // 3 inputs × 1 column
		3,
		4,
		5,
	}
	y := make([]float32, 2)
	pw.Sgemm(false, 1, 1, x, 1, 0, y, 1)
	fmt.Println(y)
	// Output: [-2 10]
}
