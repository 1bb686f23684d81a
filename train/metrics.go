package train

import (
	"encoding/json"
	"math"
	"sort"
)

// ClassMetrics are one class's validation results.
type ClassMetrics struct {
	Class     string  `json:"class"`
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
	Support   int     `json:"support"`
}

// Metrics are a classifier's results on a labelled set: metrics.json's
// "val" object and `ckpt eval --json`'s output.
type Metrics struct {
	Top1 float64 `json:"top1"`
	Top5 float64 `json:"top5"`
	// Loss is the mean cross-entropy (no label smoothing).
	Loss     float64        `json:"loss"`
	N        int            `json:"n"`
	PerClass []ClassMetrics `json:"per_class"`
	// Confusion[i][j] counts images of class i predicted as j.
	Confusion [][]int  `json:"confusion"`
	Classes   []string `json:"classes"`
}

// Accumulator gathers logits and labels batch by batch into Metrics.
type Accumulator struct {
	classes   []string
	n, top1   int
	top5      int
	loss      float64
	confusion [][]int
}

// NewAccumulator starts metrics over the given classes.
func NewAccumulator(classes []string) *Accumulator {
	a := &Accumulator{classes: classes, confusion: make([][]int, len(classes))}
	for i := range a.confusion {
		a.confusion[i] = make([]int, len(classes))
	}
	return a
}

// Add counts a batch: logits [len(labels), classes], row-major.
func (a *Accumulator) Add(logits []float32, labels []int) {
	c := len(a.classes)
	for i, y := range labels {
		row := logits[i*c : (i+1)*c]
		a.loss += crossEntropy(row, y)
		order := argsortDesc(row)
		a.confusion[y][order[0]]++
		if order[0] == y {
			a.top1++
		}
		for _, k := range order[:min(5, c)] {
			if k == y {
				a.top5++
			}
		}
		a.n++
	}
}

// Loss returns the mean loss so far.
func (a *Accumulator) Loss() float64 {
	if a.n == 0 {
		return math.NaN()
	}
	return a.loss / float64(a.n)
}

// Top1 returns the top-1 accuracy so far.
func (a *Accumulator) Top1() float64 {
	if a.n == 0 {
		return math.NaN()
	}
	return float64(a.top1) / float64(a.n)
}

// Metrics returns the results. Precision of a class never predicted, and
// recall of a class without images, are 0, as scikit-learn's zero_division=0.
func (a *Accumulator) Metrics() *Metrics {
	m := &Metrics{N: a.n, Loss: a.Loss(), Confusion: a.confusion, Classes: a.classes}
	if a.n > 0 {
		m.Top1 = float64(a.top1) / float64(a.n)
		m.Top5 = float64(a.top5) / float64(a.n)
	}
	for i, name := range a.classes {
		tp, support, predicted := a.confusion[i][i], 0, 0
		for j := range a.classes {
			support += a.confusion[i][j]
			predicted += a.confusion[j][i]
		}
		cm := ClassMetrics{Class: name, Support: support}
		if predicted > 0 {
			cm.Precision = float64(tp) / float64(predicted)
		}
		if support > 0 {
			cm.Recall = float64(tp) / float64(support)
		}
		if cm.Precision+cm.Recall > 0 {
			cm.F1 = 2 * cm.Precision * cm.Recall / (cm.Precision + cm.Recall)
		}
		m.PerClass = append(m.PerClass, cm)
	}
	return m
}

// crossEntropy is -log softmax(row)[y] in float64.
func crossEntropy(row []float32, y int) float64 {
	mx := math.Inf(-1)
	for _, v := range row {
		mx = math.Max(mx, float64(v))
	}
	s := 0.0
	for _, v := range row {
		s += math.Exp(float64(v) - mx)
	}
	return math.Log(s) + mx - float64(row[y])
}

// argsortDesc orders indices by decreasing value, the lower index first
// among equals (torch.topk's order on CPU for ties is not specified; this
// one is stable).
func argsortDesc(row []float32) []int {
	idx := make([]int, len(row))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return row[idx[a]] > row[idx[b]] })
	return idx
}

// MarshalJSON writes NaN and infinite values (a diverged loss, an empty
// set) as null, which encoding/json cannot otherwise write.
func (m *Metrics) MarshalJSON() ([]byte, error) {
	type plain Metrics
	return json.Marshal(struct {
		*plain
		Loss *float64 `json:"loss"`
	}{(*plain)(m), jsonFloat(m.Loss)})
}

// MarshalJSON writes NaN and infinite values as null.
func (s EpochStats) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{
		"epoch": s.Epoch, "lr": jsonFloat(s.LR), "train_loss": jsonFloat(s.TrainLoss), "train_top1": jsonFloat(s.TrainTop1),
		"val_loss": jsonFloat(s.ValLoss), "val_top1": jsonFloat(s.ValTop1), "val_top5": jsonFloat(s.ValTop5), "seconds": s.Seconds,
		"train_seconds": s.TrainSeconds, "data_wait_seconds": s.DataWait,
	})
}

func jsonFloat(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}
