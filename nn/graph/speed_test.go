package graph_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ckptkit/ckpt/formats/onnx"
	"github.com/ckptkit/ckpt/internal/testenv"
	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/graph"
	"github.com/ckptkit/ckpt/nn/graph/onnximport"
	"github.com/ckptkit/ckpt/nn/models"
)

var (
	speedOnce sync.Once
	speedDir  string
	speedErr  error
)

// TestMain removes the speed models a test generated.
func TestMain(m *testing.M) {
	code := m.Run()
	if speedDir != "" {
		os.RemoveAll(speedDir)
	}
	os.Exit(code)
}

// speedArchs are the architectures of the speed models: resnet18 and
// mobilenet_v2, or the list in $CKPT_GRAPH_BENCH_ARCHS (comma-separated
// torchvision names) for BenchmarkGraphVsNative on others.
func speedArchs() []string {
	if a := os.Getenv("CKPT_GRAPH_BENCH_ARCHS"); a != "" {
		return strings.Split(a, ",")
	}
	return []string{"resnet18", "mobilenet_v2"}
}

// speedModels returns the directory testdata/gen/onnx_speed_models.py
// wrote for speedArchs ($CKPT_ONNX_SPEED_MODELS, or generated once per test
// binary).
func speedModels(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("CKPT_ONNX_SPEED_MODELS"); d != "" {
		return d
	}
	if testing.Short() {
		t.Skip("skipping in -short mode: exporting the models takes about ten seconds")
	}
	py := testenv.Python(t)
	speedOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ckpt-onnx-speed-models-")
		if err != nil {
			speedErr = err
			return
		}
		out, err := exec.Command(py, "../../testdata/gen/onnx_speed_models.py", dir, strings.Join(speedArchs(), ",")).CombinedOutput()
		if err != nil {
			speedErr = fmt.Errorf("onnx_speed_models.py: %v\n%s", err, out)
			return
		}
		speedDir = dir
	})
	if speedErr != nil {
		t.Fatal(speedErr)
	}
	return speedDir
}

func importSpeedModel(t testing.TB, path string) *graph.Graph {
	t.Helper()
	m, err := onnx.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	g, err := onnximport.Import(m, onnximport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// cpuTime returns the CPU time (user and system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkGraphVsNative times an imported torchvision export against the
// native --arch model on the same weights, both prepared (nn.Prepare) and
// run through nn.Infer, at batch 1 and 8 of 3x224x224 images: "graph" is
// the default export (BatchNorm folded by torch), "graph_bn" the
// TrainingMode.PRESERVE export (BatchNormalization nodes, folded at
// prepare time). Besides ns/op it reports cpu-ms/op, the process CPU time
// per pass, which a shared machine's load disturbs far less than the wall
// time; the ratio that matters is graph's cpu-ms/op over native's:
//
//	go test ./nn/graph -run XXX -bench GraphVsNative -benchtime 10x
//
// $CKPT_GRAPH_BENCH_ARCHS=efficientnet_b0,... times other architectures.
func BenchmarkGraphVsNative(b *testing.B) {
	dir := speedModels(b)
	for _, arch := range speedArchs() {
		native, _, err := models.LoadFile(arch, filepath.Join(dir, arch+".pt"), models.Config{})
		if err != nil {
			b.Fatal(err)
		}
		mods := []struct {
			name string
			m    nn.Module
		}{
			{"native", native},
			{"graph", importSpeedModel(b, filepath.Join(dir, arch+".onnx"))},
			{"graph_bn", importSpeedModel(b, filepath.Join(dir, arch+"_bn.onnx"))},
		}
		for _, batch := range []int{1, 8} {
			x := nn.Full(0.5, batch, 3, 224, 224)
			for _, md := range mods {
				md.m.Eval()
				if err := nn.Prepare(md.m); err != nil {
					b.Fatal(err)
				}
				b.Run(fmt.Sprintf("%s/batch%d/%s", arch, batch, md.name), func(b *testing.B) {
					nn.Infer(md.m, x) // the first pass packs the weights
					b.ReportAllocs()
					b.ResetTimer()
					c0 := cpuTime()
					for i := 0; i < b.N; i++ {
						nn.Infer(md.m, x)
					}
					b.ReportMetric(float64(cpuTime()-c0)/1e6/float64(b.N), "cpu-ms/op")
				})
			}
		}
	}
}
