package onnximport

import (
	"fmt"

	"github.com/ckptkit/ckpt/nn/graph"
)

// TfIdfVectorizer over integer token ids (string pools are not supported).

func init() { register(buildTfIdf, "TfIdfVectorizer") }

func buildTfIdf(c *nodeCtx) (graph.Kernel, error) {
	mode := c.str("mode", "TF")
	minN, maxN := int(c.int("min_gram_length", 1)), int(c.int("max_gram_length", 1))
	maxSkip := int(c.int("max_skip_count", 0))
	counts := c.ints("ngram_counts", nil)
	indexes := c.ints("ngram_indexes", nil)
	pool := c.ints("pool_int64s", nil)
	weights := c.floats("weights", nil)
	if c.has("pool_strings") {
		return nil, c.unsupported("pool_strings")
	}
	if mode != "TF" && mode != "IDF" && mode != "TFIDF" {
		return nil, c.unsupported("mode %q", mode)
	}
	if minN < 1 || maxN < minN || maxN > len(counts) || maxSkip < 0 || maxSkip > 1<<10 {
		return nil, c.errorf("gram lengths %d..%d, %d ngram_counts, max_skip_count %d", minN, maxN, len(counts), maxSkip)
	}
	// gram index of every pooled n-gram, keyed by its ids.
	type key struct {
		n   int
		ids string
	}
	lookup := map[key]int{}
	outDim := 0
	for _, ix := range indexes {
		if ix < 0 || ix >= int64(c.opts.MaxElements) {
			return nil, c.errorf("ngram index %d out of range", ix)
		}
		outDim = max(outDim, int(ix)+1)
	}
	g := 0
	for n := 1; n <= len(counts); n++ {
		start := int(counts[n-1])
		end := len(pool)
		if n < len(counts) {
			end = int(counts[n])
		}
		if start < 0 || end > len(pool) || start > end || (end-start)%n != 0 {
			return nil, c.errorf("ngram_counts %v do not fit a pool of %d", counts, len(pool))
		}
		for p := start; p < end; p += n {
			lookup[key{n, fmt.Sprint(pool[p : p+n])}] = g
			g++
		}
	}
	if g != len(indexes) {
		return nil, c.errorf("%d pooled n-grams, %d ngram_indexes", g, len(indexes))
	}
	limit := c.opts.MaxElements
	for _, ix := range indexes {
		if ix < 0 || ix >= int64(limit) {
			return nil, c.errorf("ngram index %d out of range", ix)
		}
	}
	wOut := make([]float64, outDim)
	for j := range wOut {
		wOut[j] = 1
	}
	for gi, ix := range indexes {
		if gi < len(weights) {
			wOut[ix] = float64(weights[gi])
		}
	}
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x := in[0]
		if x.Rank() < 1 || x.Rank() > 2 || x.DType().IsFloat() {
			return nil, fmt.Errorf("input %s%v: want 1-D or 2-D integer ids", x.DType(), x.Shape())
		}
		rows, cols := 1, x.Shape()[0]
		shape := []int{outDim}
		if x.Rank() == 2 {
			rows, cols = x.Shape()[0], x.Shape()[1]
			shape = []int{rows, outDim}
		}
		if err := checkElems(numelChecked([]int{rows, outDim}, limit), limit); err != nil {
			return nil, err
		}
		ids := x.Int64s()
		y := make([]float64, rows*outDim)
		for r := 0; r < rows; r++ {
			row := ids[r*cols : (r+1)*cols]
			cnt := make([]float64, outDim)
			for n := minN; n <= maxN; n++ {
				for skip := 0; skip <= maxSkip; skip++ {
					if n == 1 && skip > 0 {
						break
					}
					step := skip + 1
					for i := 0; i+(n-1)*step < len(row); i++ {
						gram := make([]int64, n)
						for k := range gram {
							gram[k] = row[i+k*step]
						}
						if gi, ok := lookup[key{n, fmt.Sprint(gram)}]; ok {
							cnt[indexes[gi]]++
						}
					}
				}
			}
			for j, v := range cnt {
				w := wOut[j]
				switch mode {
				case "TF":
					y[r*outDim+j] = v
				case "IDF":
					if v > 0 {
						y[r*outDim+j] = w
					}
				case "TFIDF":
					y[r*outDim+j] = v * w
				}
			}
		}
		return one(graph.Make(graph.Float32, shape, y)), nil
	}, nil
}
