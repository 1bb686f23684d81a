package onnximport

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/ckptkit/ckpt/formats/onnx"
	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/graph"
)

func TestZZGradSurvey(t *testing.T) {
	root := nodeCasesDir(t)
	ents, _ := os.ReadDir(root)
	noGrad := map[string][]string{}
	for _, e := range ents {
		dir := filepath.Join(root, e.Name())
		m, err := onnx.Open(filepath.Join(dir, "model.onnx"))
		if err != nil || len(m.Graph.Node) != 1 {
			continue
		}
		op := m.Graph.Node[0].OpType
		g, err := Import(m, Options{})
		if err != nil {
			continue
		}
		g.Eval()
		set := filepath.Join(dir, "test_data_set_0")
		var ins []*graph.Value
		anyF := false
		ok := true
		for k := range g.Inputs() {
			v, err := readPB(filepath.Join(set, fmt.Sprintf("input_%d.pb", k)))
			if err != nil {
				ok = false
				break
			}
			if tt := v.Tensor(); tt != nil {
				tt.SetRequiresGrad(true)
				anyF = true
			}
			ins = append(ins, v)
		}
		if !ok || !anyF {
			continue
		}
		var outs []*graph.Value
		err = nn.Guard(func() { outs, err = g.RunOrdered(ins...) })
		if err != nil {
			continue
		}
		for k, o := range outs {
			if o.DType() != graph.Float32 {
				continue
			}
			if o.Tensor() == nil || !o.Tensor().RequiresGrad() {
				noGrad[op] = append(noGrad[op], fmt.Sprintf("%s#%d", e.Name(), k))
			}
		}
		m.Close()
	}
	var ops []string
	for op := range noGrad {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	for _, op := range ops {
		t.Logf("%s: %d %v", op, len(noGrad[op]), noGrad[op][:min(3, len(noGrad[op]))])
	}
}
