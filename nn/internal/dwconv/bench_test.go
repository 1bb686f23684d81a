package dwconv

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkTaps times Taps on a padded 58-wide plane held in L1 (the
// 3×3 layout of a 56×56 channel) and on a 7×7 channel's 11-wide plane with
// 5×5 taps, reporting GFLOP/s (2·multiply-adds per tap and output).
func BenchmarkTaps(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, c := range []struct{ pitch, rows, k int }{{58, 58, 3}, {60, 60, 5}, {62, 62, 7}, {11, 11, 5}, {16, 16, 3}} {
		b.Run(fmt.Sprintf("pitch%d_k%d", c.pitch, c.k), func(b *testing.B) {
			src := randSlice(r, c.pitch*c.rows)
			var offs []int
			for ki := range c.k {
				for kj := range c.k {
					offs = append(offs, ki*c.pitch+kj)
				}
			}
			w := randSlice(r, len(offs))
			dst := make([]float32, (c.rows-c.k)*c.pitch+c.pitch-c.k+1)
			var runs []Run
			for ki := range c.k {
				runs = append(runs, Run{Off: ki * c.pitch, Len: c.k, W: ki * c.k, WStep: 1})
			}
			src = append(src, make([]float32, Slack)...)
			flops := 2 * float64(len(dst)*len(offs))
			b.Run("taps", func(b *testing.B) {
				for b.Loop() {
					Taps(dst, src, offs, w, 0)
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
			b.Run("runs", func(b *testing.B) {
				for b.Loop() {
					TapRuns(dst, src, runs, w, 0)
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		})
	}
}
