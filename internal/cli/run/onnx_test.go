package run

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ckptkit/ckpt/formats/npy"
	"github.com/ckptkit/ckpt/formats/onnx"
	"github.com/ckptkit/ckpt/internal/cli/cmdutil"
	"github.com/ckptkit/ckpt/tensor"
)

func f32Tensor(t *testing.T, shape []int64, v ...float32) *tensor.Tensor {
	b := make([]byte, 4*len(v))
	for k, e := range v {
		u := math.Float32bits(e)
		b[4*k], b[4*k+1], b[4*k+2], b[4*k+3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
	}
	x, err := tensor.FromBytes(tensor.Float32, shape, b)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// writeModel writes a graph of two inputs a [batch, 3] and b [3] and two
// outputs: sum = a + b and n = Shape(a) (int64).
func writeModel(t *testing.T, dir string, op string) string {
	m := &onnx.Model{IRVersion: 8, OpsetImport: []*onnx.OperatorSetID{{Version: 13}}, Graph: &onnx.Graph{
		Name: "g",
		Node: []*onnx.Node{
			{OpType: op, Name: "add_0", Input: []string{"a", "b"}, Output: []string{"sum"}},
			{OpType: "Shape", Name: "shape_1", Input: []string{"a"}, Output: []string{"n"}},
		},
		Input:  []*onnx.ValueInfo{onnx.TensorValue("a", onnx.Float, -1, 3), onnx.TensorValue("b", onnx.Float, 3)},
		Output: []*onnx.ValueInfo{onnx.TensorValue("sum", onnx.Float, -1, 3), onnx.TensorValue("n", onnx.Int64, 2)},
	}}
	p := filepath.Join(dir, "m.onnx")
	if err := onnx.Write(p, m); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeNpy(t *testing.T, path string, x *tensor.Tensor) {
	var buf bytes.Buffer
	if err := npy.Write(&buf, x); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readPB(t *testing.T, path string) *onnx.TensorProto {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := onnx.UnmarshalTensor(b)
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

func TestRunONNX(t *testing.T) {
	dir := t.TempDir()
	model := writeModel(t, dir, "Add")
	a, b := filepath.Join(dir, "a.npy"), filepath.Join(dir, "b.pb")
	writeNpy(t, a, f32Tensor(t, []int64{2, 3}, 1, 2, 3, 4, 5, 6))
	tp := &onnx.TensorProto{Name: "b"}
	if err := tp.SetData(f32Tensor(t, []int64{3}, 10, 20, 30)); err != nil {
		t.Fatal(err)
	}
	pb, err := onnx.MarshalTensor(tp)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b, pb, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		inputs []string
	}{{"in order", []string{a, b}}, {"by name", []string{"b=" + b, "a=" + a}}} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			var stdout bytes.Buffer
			o := &Options{IO: &cmdutil.IOStreams{Out: &stdout, ErrOut: &stdout}, Weights: model, Inputs: tc.inputs, Input: tc.inputs[0], Output: out}
			if err := runRun(o); err != nil {
				t.Fatal(err)
			}
			sum := readPB(t, filepath.Join(out, "output_0.pb"))
			x, err := sum.Tensor()
			if err != nil {
				t.Fatal(err)
			}
			got, _ := x.Float32s()
			want := []float32{11, 22, 33, 14, 25, 36}
			for k := range want {
				if got[k] != want[k] {
					t.Fatalf("got sum %v, want %v", got, want)
				}
			}
			n := readPB(t, filepath.Join(out, "output_1.pb"))
			if n.DataType != onnx.Int64 {
				t.Errorf("got output 1 of type %s, want INT64", n.DataType)
			}
			if !strings.Contains(stdout.String(), "[2, 3] [2]") {
				t.Errorf("got summary %q, want the output shapes [2, 3] [2]", stdout.String())
			}
		})
	}
	t.Run("errors", func(t *testing.T) {
		cases := []struct {
			name   string
			model  string
			inputs []string
			output string
			want   string
		}{
			{"one input missing", model, []string{a}, filepath.Join(t.TempDir(), "o"), `no --input for graph input "b"`},
			{"unknown name", model, []string{"c=" + a, b}, filepath.Join(t.TempDir(), "o"), `the graph has no input "c"`},
			{"file for two outputs", model, []string{a, b}, filepath.Join(t.TempDir(), "o.npy"), "--output must be a directory"},
			{"unsupported node", writeModel(t, t.TempDir(), "FancyAdd"), []string{a, b}, filepath.Join(t.TempDir(), "o"),
				`onnx: node 0 "add_0": FancyAdd (opset 13) is not supported`},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				var stdout bytes.Buffer
				o := &Options{IO: &cmdutil.IOStreams{Out: &stdout, ErrOut: &stdout}, Weights: tc.model, Inputs: tc.inputs, Input: tc.inputs[0], Output: tc.output}
				err := runRun(o)
				if err == nil || !strings.Contains(err.Error(), tc.want) || cmdutil.ExitCode(err) != cmdutil.ExitInvalid {
					t.Fatalf("got %v (exit %d), want exit 2 with %q", err, cmdutil.ExitCode(err), tc.want)
				}
				if _, err := os.Stat(tc.output); err == nil {
					t.Errorf("%s was written", tc.output)
				}
			})
		}
	})
}

func TestInputFlagRepeats(t *testing.T) {
	var got *Options
	cmd := NewCmdRun(&cmdutil.IOStreams{}, func(o *Options) error { got = o; return nil })
	cmd.SetArgs([]string{"--weights", "m.onnx", "--input", "a.npy", "--input", "b=b.pb", "--output", "out"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if got.Input != "a.npy" || strings.Join(got.Inputs, ",") != "a.npy,b=b.pb" {
		t.Errorf("got Input %q and Inputs %q, want a.npy and a.npy,b=b.pb", got.Input, got.Inputs)
	}
}
