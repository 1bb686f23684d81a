package formats

import (
	"github.com/ckptkit/ckpt/formats/onnx"
)

// onnxAliases returns the parameters that torch.onnx.export merged into
// another initializer of equal value (it deduplicates them, as in a freshly
// initialized model: a LayerNorm's weight and another's, a BatchNorm's
// running_var and weight). Each survives as the output of an Identity node
// of the main graph that reads the kept initializer, named as the
// parameter was:
//
//	initializer  ln1.weight
//	node         Identity(ln1.weight) -> ln2.weight
//
// The result maps each alias, in node order, to the initializer it reads
// (through chains of Identity nodes). Outputs that are initializers or
// graph outputs themselves are not aliases.
func onnxAliases(m *onnx.Model) []onnxAlias {
	g := m.Graph
	if g == nil {
		return nil
	}
	src := make(map[string]string, len(g.Initializer)) // name -> initializer it holds
	for _, t := range g.Initializer {
		src[t.Name] = t.Name
	}
	outputs := map[string]bool{}
	for _, o := range g.Output {
		outputs[o.Name] = true
	}
	var out []onnxAlias
	for _, n := range g.Node {
		if n.OpType != "Identity" || (n.Domain != "" && n.Domain != "ai.onnx") || len(n.Input) != 1 || len(n.Output) != 1 {
			continue
		}
		from, ok := src[n.Input[0]]
		name := n.Output[0]
		if !ok || name == "" || outputs[name] {
			continue
		}
		if _, dup := src[name]; dup {
			continue
		}
		src[name] = from
		out = append(out, onnxAlias{name, from})
	}
	return out
}

// onnxAlias is a parameter name and the initializer holding its value.
type onnxAlias struct{ name, init string }
