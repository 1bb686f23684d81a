// Package openblas links OpenBLAS for gemm's `netlib` build tag; without
// that tag (or without cgo) it is empty.
package openblas
