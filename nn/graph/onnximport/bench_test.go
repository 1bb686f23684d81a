package onnximport

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/ckptkit/ckpt/formats/onnx"
	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/models"
)

// BenchmarkExportVsNative times an imported torchvision export (BatchNorm
// folded, as torch exports by default) against the native --arch model on
// the same weights, at batch 1 and 8 of 3x64x64 images (the exports'
// shape). Compare the ns/op of the graph and native sub-benchmarks:
//
//	go test ./nn/graph/onnximport -run XXX -bench ExportVsNative -benchtime 20x
func BenchmarkExportVsNative(b *testing.B) {
	dir := graphModels(b)
	for _, arch := range []string{"resnet18", "mobilenet_v2"} {
		m, err := onnx.Open(filepath.Join(dir, arch+"_op13.onnx"))
		if err != nil {
			b.Fatal(err)
		}
		g, err := Import(m, Options{})
		if err != nil {
			b.Fatal(err)
		}
		g.Eval()
		native, _, err := models.LoadFile(arch, filepath.Join(dir, arch+".pt"), models.Config{})
		if err != nil {
			b.Fatal(err)
		}
		native.Eval()
		for _, batch := range []int{1, 8} {
			x := nn.Full(0.5, batch, 3, 64, 64)
			b.Run(fmt.Sprintf("%s/batch%d/graph", arch, batch), func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					nn.Infer(g, x)
				}
			})
			b.Run(fmt.Sprintf("%s/batch%d/native", arch, batch), func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					nn.Infer(native, x)
				}
			})
		}
		m.Close()
	}
}
