//go:build !amd64 || purego

package vec

func maxOf(p []float32) float32 { return maxGo(p) }
func sumOf(p []float32) float32 { return sumGo(p) }
func add(dst, src []float32)    { addGo(dst, src) }
