package onnx

import (
	"fmt"
	"slices"
	"strings"
)

// ReplaceReport says what ReplaceInitializers did.
type ReplaceReport struct {
	// Replaced lists the initializers whose elements were replaced, in
	// graph order.
	Replaced []string
	// Unaliased lists the tensors that were the output of an Identity node
	// reading an initializer - the form torch.onnx.export gives to
	// parameters whose values were equal at export and that it
	// deduplicated - and now are initializers of their own, the Identity
	// node removed, so that they take their own values.
	Unaliased []string
	// Unused lists the given tensors the graph has neither an initializer
	// nor an Identity alias for (such as BatchNorm's num_batches_tracked),
	// in the order given. They are not an error.
	Unused []string
	// Kept lists the initializers of a data type with no tensor.DType
	// (UINT16, STRING, float8, ...) that no given tensor is named after:
	// no checkpoint can hold them, so they keep their values.
	Kept []string
}

// ProblemKind classifies a mismatch between a graph's initializer and the
// tensors meant to replace it.
type ProblemKind int

// The kinds of problems ReplaceInitializers reports.
const (
	Missing       ProblemKind = iota + 1 // the initializer has no tensor of its name
	DTypeMismatch                        // the tensor's dtype is not the initializer's data type
	ShapeMismatch                        // the tensor's shape is not the initializer's dims
	Duplicate                            // two tensors, or two initializers, have the name
	Invalid                              // the tensor does not describe valid data (Checkpoint says why)
)

// Problem is one initializer that cannot be replaced.
type Problem struct {
	Name string
	Kind ProblemKind
	// Graph and Checkpoint describe the two sides for a mismatch, such as
	// "FLOAT" and "float16", or "[8 3 3 3]" and "[8 3 5 5]".
	Graph, Checkpoint string
}

// String describes the problem in one line.
func (p Problem) String() string {
	switch p.Kind {
	case Missing:
		return fmt.Sprintf("initializer %q is missing from the checkpoint", p.Name)
	case DTypeMismatch:
		return fmt.Sprintf("initializer %q: data type %s in the graph, %s in the checkpoint", p.Name, p.Graph, p.Checkpoint)
	case ShapeMismatch:
		return fmt.Sprintf("initializer %q: shape %s in the graph, %s in the checkpoint", p.Name, p.Graph, p.Checkpoint)
	case Invalid:
		return fmt.Sprintf("tensor %q: %s", p.Name, p.Checkpoint)
	case Duplicate:
		return fmt.Sprintf("name %q appears twice in the %s", p.Name, p.Graph+p.Checkpoint)
	}
	return fmt.Sprintf("initializer %q: problem %d", p.Name, int(p.Kind))
}

// ReplaceError lists every initializer ReplaceInitializers could not
// replace. The model is left unchanged.
type ReplaceError struct {
	Problems []Problem
}

// Error lists the problems, one per line after a summary.
func (e *ReplaceError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "onnx: %d initializer problem(s), model unchanged:", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// ReplaceInitializers replaces the elements of every initializer of the main
// graph by the tensor of the same name in ts, which must have the
// initializer's data type and dims. Initializers of a data type no tensor
// has (UINT16, STRING, float8, ...) that ts does not name keep their values
// (ReplaceReport.Kept). Either every other initializer is replaced, or
// none is and the error is a *ReplaceError listing all the problems
// (missing tensors, dtype and shape mismatches, duplicate names). Tensors of
// ts the graph does not use are listed in the report, not an error.
//
// torch.onnx.export keeps one initializer for parameters that hold equal
// values at export (a freshly initialized BatchNorm's weights) and names the
// others as outputs of Identity nodes reading it. A tensor of ts named as
// such an output, with the initializer's data type and shape, becomes an
// initializer of its own and the Identity node is removed, so that every
// parameter takes its own value (ReplaceReport.Unaliased).
//
// Subgraph initializers (inside If or Loop bodies) are not replaced. The
// tensors are read when the model is written.
func (m *Model) ReplaceInitializers(ts []Named) (*ReplaceReport, error) {
	if m.Graph == nil {
		return nil, fmt.Errorf("onnx: model has no graph")
	}
	var problems []Problem
	byName := make(map[string]int, len(ts))
	for i, n := range ts {
		if _, dup := byName[n.Name]; dup {
			problems = append(problems, Problem{Name: n.Name, Kind: Duplicate, Checkpoint: "checkpoint"})
			continue
		}
		byName[n.Name] = i
	}
	used := make([]bool, len(ts))
	seen := make(map[string]bool, len(m.Graph.Initializer))
	for _, init := range m.Graph.Initializer {
		if seen[init.Name] {
			problems = append(problems, Problem{Name: init.Name, Kind: Duplicate, Graph: "graph"})
			continue
		}
		seen[init.Name] = true
		i, ok := byName[init.Name]
		if _, typed := init.DataType.DType(); !ok && !typed {
			continue // kept: see ReplaceReport.Kept
		}
		if !ok {
			problems = append(problems, Problem{Name: init.Name, Kind: Missing})
			continue
		}
		used[i] = true
		x := ts[i].Tensor
		if x == nil {
			problems = append(problems, Problem{Name: init.Name, Kind: Invalid, Checkpoint: "no tensor"})
			continue
		}
		if err := x.Validate(); err != nil {
			problems = append(problems, Problem{Name: init.Name, Kind: Invalid, Checkpoint: err.Error()})
			continue
		}
		if dt, ok := DataTypeOf(x.DType); !ok || dt != init.DataType {
			problems = append(problems, Problem{Name: init.Name, Kind: DTypeMismatch, Graph: init.DataType.String(), Checkpoint: x.DType.String()})
			continue
		}
		if !slices.Equal(init.Dims, x.Shape) {
			problems = append(problems, Problem{Name: init.Name, Kind: ShapeMismatch, Graph: fmt.Sprint(init.Dims), Checkpoint: fmt.Sprint(x.Shape)})
		}
	}
	// Identity aliases of initializers, by output name.
	inits := make(map[string]*TensorProto, len(m.Graph.Initializer))
	for _, init := range m.Graph.Initializer {
		inits[init.Name] = init
	}
	aliasNode := map[string]int{}
	for i, n := range m.Graph.Node {
		if n.OpType == "Identity" && (n.Domain == "" || n.Domain == "ai.onnx") && len(n.Input) == 1 && len(n.Output) == 1 && inits[n.Input[0]] != nil {
			aliasNode[n.Output[0]] = i
		}
	}
	var unalias []int // indexes into ts
	for i, n := range ts {
		ni, ok := aliasNode[n.Name]
		if used[i] || !ok || n.Tensor == nil {
			continue
		}
		src := inits[m.Graph.Node[ni].Input[0]]
		used[i] = true
		if dt, ok := DataTypeOf(n.Tensor.DType); !ok || dt != src.DataType {
			problems = append(problems, Problem{Name: n.Name, Kind: DTypeMismatch, Graph: src.DataType.String(), Checkpoint: n.Tensor.DType.String()})
			continue
		}
		if !slices.Equal(src.Dims, n.Tensor.Shape) {
			problems = append(problems, Problem{Name: n.Name, Kind: ShapeMismatch, Graph: fmt.Sprint(src.Dims), Checkpoint: fmt.Sprint(n.Tensor.Shape)})
			continue
		}
		if err := n.Tensor.Validate(); err != nil {
			problems = append(problems, Problem{Name: n.Name, Kind: Invalid, Checkpoint: err.Error()})
			continue
		}
		unalias = append(unalias, i)
	}
	if len(problems) > 0 {
		return nil, &ReplaceError{Problems: problems}
	}
	rep := &ReplaceReport{}
	for _, init := range m.Graph.Initializer {
		i, ok := byName[init.Name]
		if !ok {
			rep.Kept = append(rep.Kept, init.Name)
			continue
		}
		if err := init.SetData(ts[i].Tensor); err != nil {
			return nil, err
		}
		rep.Replaced = append(rep.Replaced, init.Name)
	}
	drop := map[int]bool{}
	for _, i := range unalias {
		t := &TensorProto{Name: ts[i].Name}
		if err := t.SetData(ts[i].Tensor); err != nil {
			return nil, err
		}
		m.Graph.Initializer = append(m.Graph.Initializer, t)
		drop[aliasNode[ts[i].Name]] = true
		rep.Unaliased = append(rep.Unaliased, ts[i].Name)
	}
	if len(drop) > 0 {
		nodes := m.Graph.Node[:0]
		for i, n := range m.Graph.Node {
			if !drop[i] {
				nodes = append(nodes, n)
			}
		}
		clear(m.Graph.Node[len(nodes):])
		m.Graph.Node = nodes
	}
	for i, n := range ts {
		if !used[i] {
			rep.Unused = append(rep.Unused, n.Name)
		}
	}
	return rep, nil
}
