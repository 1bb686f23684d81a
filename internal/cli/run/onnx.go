package run

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/ckptkit/ckpt/internal/cli/cmdutil"
	"github.com/ckptkit/ckpt/internal/cli/modelcmd"
)

// runONNX runs an ONNX graph: no --arch, one --input per graph input (in
// order or NAME=FILE), one output to a file or several to
// DIR/output_<i>.pb.
func runONNX(o *Options) error {
	if o.Arch != "" {
		return cmdutil.UsageError("--arch does not apply to an ONNX model: the graph is the architecture")
	}
	if o.Output == "" {
		return cmdutil.UsageError("--output is required")
	}
	inputs := o.Inputs
	if len(inputs) == 0 && o.Input != "" {
		inputs = []string{o.Input}
	}
	g, m, err := modelcmd.LoadGraph(o.Weights)
	if err != nil {
		return err
	}
	defer m.Close()
	ins, err := modelcmd.GraphInputs(g, inputs)
	if err != nil {
		return err
	}
	start := time.Now()
	outs, err := modelcmd.RunGraph(g, ins)
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	paths, err := modelcmd.WriteGraphOutputs(o.Output, outs, o.Force)
	if err != nil {
		return err
	}
	shapes := make([]string, len(outs))
	for k, v := range outs {
		shapes[k] = modelcmd.Shape(v.Shape())
	}
	if o.JSON {
		js := make([][]int, len(outs))
		for k, v := range outs {
			js[k] = v.Shape()
		}
		return json.NewEncoder(o.IO.Out).Encode(map[string]any{
			"model": o.Weights, "output_shapes": js, "outputs": paths, "forward_ms": float64(elapsed.Microseconds()) / 1000,
		})
	}
	fmt.Fprintf(o.IO.Out, "%s: %d nodes, outputs %s written to %s (forward %.1f ms)\n",
		o.Weights, len(g.Nodes()), strings.Join(shapes, " "), strings.Join(paths, ", "), float64(elapsed.Microseconds())/1000)
	return nil
}
