package inspect

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/ckptkit/ckpt/formats/onnx"
	"github.com/ckptkit/ckpt/nn/graph/onnximport"
)

// Graph summarizes an ONNX model's graph: what a user needs to know to run
// it or to write weights into it (ckpt convert --graph).
type Graph struct {
	IRVersion int64  `json:"ir_version"`
	Producer  string `json:"producer,omitempty"`
	// Opsets maps operator domains ("" for the default ai.onnx) to versions.
	Opsets  map[string]int64 `json:"opsets"`
	Nodes   int              `json:"nodes"`
	Inputs  []Value          `json:"inputs"`
	Outputs []Value          `json:"outputs"`
	// Ops counts the nodes of each operator ("domain.Op" outside ai.onnx).
	Ops map[string]int `json:"ops"`
	// Unsupported lists the nodes ckpt cannot run, one message each.
	Unsupported []string `json:"unsupported,omitempty"`
}

// Value is a graph input or output.
type Value struct {
	Name string `json:"name"`
	// Type is the element type ("float32", or ONNX's name where ckpt has
	// no dtype for it), "" when the value is not a tensor.
	Type string `json:"type"`
	// Shape holds sizes (numbers) and symbolic dimensions (strings, "?"
	// when unnamed); nil when the rank is unknown.
	Shape []any `json:"shape"`
}

// graphOf returns the summary of m's main graph, nil when it has none.
// Graph inputs that are initializers (as IR version 3 lists them) are
// weights, not inputs, and are left out.
func graphOf(m *onnx.Model) *Graph {
	if m == nil || m.Graph == nil {
		return nil
	}
	g := &Graph{IRVersion: m.IRVersion, Opsets: map[string]int64{}, Nodes: len(m.Graph.Node), Inputs: []Value{}, Outputs: []Value{}}
	g.Producer = strings.TrimSpace(m.ProducerName + " " + m.ProducerVersion)
	for _, o := range m.OpsetImport {
		g.Opsets[o.Domain] = o.Version
	}
	weights := map[string]bool{}
	for _, t := range m.Graph.Initializer {
		weights[t.Name] = true
	}
	for _, v := range m.Graph.Input {
		if !weights[v.Name] {
			g.Inputs = append(g.Inputs, valueOf(v))
		}
	}
	for _, v := range m.Graph.Output {
		g.Outputs = append(g.Outputs, valueOf(v))
	}
	g.Ops = map[string]int{}
	for _, n := range m.Graph.Node {
		op := n.OpType
		if n.Domain != "" && n.Domain != "ai.onnx" {
			op = n.Domain + "." + op
		}
		g.Ops[op]++
	}
	if unsup, err := onnximport.Check(m); err == nil {
		for _, u := range unsup {
			g.Unsupported = append(g.Unsupported, u.Error())
		}
	}
	return g
}

func valueOf(v *onnx.ValueInfo) Value {
	out := Value{Name: v.Name}
	if v.Type == nil || v.Type.Tensor == nil {
		return out
	}
	tt := v.Type.Tensor
	if dt, ok := tt.ElemType.DType(); ok {
		out.Type = dt.String()
	} else {
		out.Type = tt.ElemType.String()
	}
	if tt.Shape != nil {
		out.Shape = []any{}
		for _, d := range tt.Shape.Dim {
			switch {
			case d.HasValue():
				out.Shape = append(out.Shape, d.Value)
			case d.HasParam():
				out.Shape = append(out.Shape, d.Param)
			default:
				out.Shape = append(out.Shape, "?")
			}
		}
	}
	return out
}

// String formats v as "input  float32 [batch, 3, 224, 224]".
func (v Value) String() string {
	if v.Type == "" {
		return v.Name + "  (not a tensor)"
	}
	shape := "[?]"
	if v.Shape != nil {
		dims := make([]string, len(v.Shape))
		for i, d := range v.Shape {
			switch x := d.(type) {
			case int64:
				dims[i] = strconv.FormatInt(x, 10)
			case float64: // decoded from JSON
				dims[i] = strconv.FormatFloat(x, 'f', -1, 64)
			default:
				dims[i] = fmt.Sprint(x)
			}
		}
		shape = "[" + strings.Join(dims, ", ") + "]"
	}
	return v.Name + "  " + v.Type + " " + shape
}

// writeGraph writes the graph section of the table.
func writeGraph(b *strings.Builder, g *Graph) {
	b.WriteString("\ngraph:\n")
	if g.Producer != "" {
		fmt.Fprintf(b, "  producer  %s\n", g.Producer)
	}
	var ops []string
	for d, v := range g.Opsets {
		if d == "" {
			d = "ai.onnx"
		}
		ops = append(ops, fmt.Sprintf("%s %d", d, v))
	}
	slices.Sort(ops)
	fmt.Fprintf(b, "  ir        %d\n", g.IRVersion)
	fmt.Fprintf(b, "  opsets    %s\n", strings.Join(ops, ", "))
	fmt.Fprintf(b, "  nodes     %d\n", g.Nodes)
	for _, v := range g.Inputs {
		fmt.Fprintf(b, "  input     %s\n", v)
	}
	for _, v := range g.Outputs {
		fmt.Fprintf(b, "  output    %s\n", v)
	}
	var hist []string
	for op, n := range g.Ops {
		hist = append(hist, fmt.Sprintf("%s %d", op, n))
	}
	slices.Sort(hist)
	if len(hist) > 0 {
		fmt.Fprintf(b, "  ops       %s\n", strings.Join(hist, ", "))
	}
	if len(g.Unsupported) == 0 {
		b.WriteString("  runs      every node (ckpt run --weights FILE)\n")
	}
	for _, u := range g.Unsupported {
		fmt.Fprintf(b, "  cannot    %s\n", u)
	}
}
