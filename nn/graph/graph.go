package graph

import (
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"

	"github.com/ckptkit/ckpt/nn"
)

// Kernel computes a node's outputs from its inputs. in[k] is nil for an
// absent optional input. It returns one Value per node output (nil for an
// absent optional output). Errors name what is wrong with the data; the
// graph adds the node.
type Kernel func(ctx *Context, in []*Value) ([]*Value, error)

// Context is what a kernel may know about the call it runs in.
type Context struct {
	// Training is the graph's training flag (Dropout, BatchNormalization).
	Training bool
}

// Node is one operation of a graph.
type Node struct {
	Index   int      // position in the source graph, for messages
	Name    string   // the source node's name, may be empty
	Op      string   // the operator, such as "Conv"
	Inputs  []string // value names; "" is an absent optional input
	Outputs []string // value names; "" is an unused optional output
	Kernel  Kernel
	// ShapeOnly reports that the outputs depend only on the inputs' types
	// and shapes (Shape, Size), not their elements.
	ShapeOnly bool
	// Pure reports that the outputs depend only on the inputs (no random
	// numbers, no training state), so results may be cached.
	Pure bool
	// Source is the importer's own description of the node (an
	// *onnx.Node for onnximport), for tools that edit the graph.
	Source any
	// Fuse, when set, tells the executor what the node computes so that it
	// may run it fused with its neighbours (see [Fusion]); a tool that
	// replaces the node's Kernel with another computation must clear it.
	Fuse *Fusion
}

// Describe names the node in messages: `node 17 "Resize_3" (Resize)`.
func (n *Node) Describe() string {
	return fmt.Sprintf("node %d %q (%s)", n.Index, n.Name, Printable(n.Op))
}

// Printable returns s, or s quoted when it holds anything but printable
// ASCII (an operator name from an untrusted file must not break a
// one-line message).
func Printable(s string) string {
	for _, r := range s {
		if r < 0x20 || r > 0x7e || r == '"' {
			return strconv.Quote(s)
		}
	}
	return s
}

// Input is a graph input: its name, element type and dimensions, where a
// dimension < 0 is dynamic (Dims[k] names it when the source did).
type Input struct {
	Name     string
	DType    DType
	Shape    []int
	DimNames []string
}

// Graph is an executable graph of named values over nn's ops: an nn.Module
// whose parameters are the float tensors that feed its weights. Values are
// computed in node order; nodes whose outputs depend only on the input
// shapes (Shape -> Gather -> Concat -> Reshape chains) run once per input
// shape and are reused from a cache.
//
// A Graph is safe for concurrent Run calls in eval mode as long as nothing
// modifies its parameters meanwhile.
type Graph struct {
	nn.Base

	inputs  []Input
	outputs []string
	nodes   []*Node
	consts  map[string]*Value      // constants (folded or non-trainable initializers)
	live    map[string]**nn.Tensor // parameters and buffers, read at each call
	derived []bool                 // node k depends on input shapes only
	chains  map[int]*chain         // fused chains by the index of their last node
	inChain []bool                 // node k is a member of a chain that runs at a later node
	dies    [][]string             // the values whose last reader runs at node k
	mortal  map[string]bool        // the values that die during a call

	mu    sync.Mutex
	cache map[string]map[string]*Value
}

// maxCachedShapes bounds the shape cache: a graph run on ever new shapes
// starts over instead of growing.
const maxCachedShapes = 32

// New returns an empty graph with the given inputs and output names. Nodes,
// constants and parameters are added by an importer before the first Run.
func New(inputs []Input, outputs []string) *Graph {
	return &Graph{inputs: inputs, outputs: outputs, consts: map[string]*Value{}, live: map[string]**nn.Tensor{}}
}

// Inputs returns the graph inputs in order (constants excluded).
func (g *Graph) Inputs() []Input { return g.inputs }

// Outputs returns the graph output names in order.
func (g *Graph) Outputs() []string { return g.outputs }

// Nodes returns the nodes in execution order. Replacing a node's Kernel or
// Inputs is how a graph is edited; a tool that changes a node's Inputs,
// Outputs or Fuse in place must call Invalidate afterwards, since the
// executor plans from them (fused chains, value lifetimes, the shape cache).
func (g *Graph) Nodes() []*Node { return g.nodes }

// Invalidate drops what the executor planned from the nodes, so that the
// next call plans again; AddNode, SetOutputs, SetConst, SetLive and the
// other editing methods do it themselves.
func (g *Graph) Invalidate() { g.reset() }

// SetOutputs replaces the graph's output names.
func (g *Graph) SetOutputs(names []string) { g.outputs = names; g.reset() }

// AddNode appends a node; nodes must be added in an order where every input
// is defined before use (Prepare checks it).
func (g *Graph) AddNode(n *Node) { g.nodes = append(g.nodes, n); g.reset() }

// SetConst defines a constant value.
func (g *Graph) SetConst(name string, v *Value) { g.consts[name] = v; g.reset() }

// Const returns a constant value, or nil.
func (g *Graph) Const(name string) *Value { return g.consts[name] }

// RemoveConst deletes a constant.
func (g *Graph) RemoveConst(name string) { delete(g.consts, name); g.reset() }

// AddParameter registers t as the parameter name (an initializer's name;
// dots make the nested module path, as in a torch state_dict) and makes it
// the value of that name.
func (g *Graph) AddParameter(name string, t *nn.Tensor) {
	p := new(*nn.Tensor)
	*p = t
	register(&g.Base, name, func(b *nn.Base, leaf string) { b.RegisterParameter(leaf, p) })
	g.live[name] = p
	g.reset()
}

// AddBuffer registers t as the persistent buffer name (BatchNormalization's
// running statistics) and makes it the value of that name.
func (g *Graph) AddBuffer(name string, t *nn.Tensor) {
	p := new(*nn.Tensor)
	*p = t
	register(&g.Base, name, func(b *nn.Base, leaf string) { b.RegisterBuffer(leaf, p, true) })
	g.live[name] = p
	g.reset()
}

// Live returns the tensor of parameter or buffer name, or nil.
func (g *Graph) Live(name string) *nn.Tensor {
	if p := g.live[name]; p != nil {
		return *p
	}
	return nil
}

// SetLive replaces the tensor of parameter or buffer name; it reports
// whether the name exists.
func (g *Graph) SetLive(name string, t *nn.Tensor) bool {
	p := g.live[name]
	if p == nil {
		return false
	}
	*p = t
	g.reset()
	return true
}

// scope is a child module that only holds registrations (a path segment of
// a dotted initializer name).
type scope struct{ nn.Base }

func (s *scope) Forward(x *nn.Tensor) *nn.Tensor { panic("graph: a parameter scope is not runnable") }

// register places a registration under the module path of a dotted name;
// names that cannot be a path (empty segments, a name that is also a
// prefix) are registered flat with dots replaced by underscores.
func register(root *nn.Base, name string, reg func(b *nn.Base, leaf string)) {
	ok := func() (ok bool) {
		defer func() {
			if recover() != nil {
				ok = false
			}
		}()
		segs := strings.Split(name, ".")
		b := root
		for _, s := range segs[:len(segs)-1] {
			var child *scope
			if c := b.Child(s); c != nil {
				sc, isScope := c.(*scope)
				if !isScope {
					return false
				}
				child = sc
			} else {
				child = &scope{}
				b.AddModule(s, child)
			}
			b = &child.Base
		}
		reg(b, segs[len(segs)-1])
		return true
	}()
	if !ok {
		flat := strings.ReplaceAll(name, ".", "_")
		if flat == "" {
			flat = "_"
		}
		reg(root, flat)
	}
}

func (g *Graph) reset() {
	g.mu.Lock()
	g.cache, g.derived, g.chains, g.inChain, g.dies, g.mortal = nil, nil, nil, nil, nil, nil
	g.mu.Unlock()
}

// Prepare checks that every node input is defined before it is used and
// works out which nodes depend on the input shapes only. Run calls it.
func (g *Graph) Prepare() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.prepare()
}

func (g *Graph) prepare() error {
	if g.derived != nil {
		return nil
	}
	defined := map[string]bool{"": true}
	shapeOnly := map[string]bool{} // values computed from input shapes and constants only
	for name := range g.consts {
		defined[name], shapeOnly[name] = true, true
	}
	for name := range g.live {
		defined[name] = true
	}
	for _, in := range g.inputs {
		defined[in.Name] = true
	}
	derived := make([]bool, len(g.nodes))
	for k, n := range g.nodes {
		d := n.Pure
		for _, in := range n.Inputs {
			if !defined[in] {
				return fmt.Errorf("graph: %s: input %q is not defined before use", n.Describe(), in)
			}
			if in != "" && !shapeOnly[in] && !n.ShapeOnly {
				d = false
			}
		}
		derived[k] = d
		for _, out := range n.Outputs {
			if out != "" {
				defined[out] = true
				shapeOnly[out] = d
			}
		}
	}
	for _, out := range g.outputs {
		if !defined[out] {
			return fmt.Errorf("graph: output %q is not computed by any node", out)
		}
	}
	g.derived = derived
	g.chains, g.inChain = g.planChains(derived)
	g.dies, g.mortal = g.planLifetimes(derived, g.chains)
	return nil
}

// Run computes the graph's outputs from the named inputs.
func (g *Graph) Run(inputs map[string]*Value) (map[string]*Value, error) {
	ordered := make([]*Value, len(g.inputs))
	for k, in := range g.inputs {
		v, ok := inputs[in.Name]
		if !ok {
			return nil, fmt.Errorf("graph: input %q is missing", in.Name)
		}
		ordered[k] = v
	}
	for name := range inputs {
		found := false
		for _, in := range g.inputs {
			found = found || in.Name == name
		}
		if !found {
			return nil, fmt.Errorf("graph: %q is not an input of the graph", name)
		}
	}
	outs, err := g.RunOrdered(ordered...)
	if err != nil {
		return nil, err
	}
	m := make(map[string]*Value, len(outs))
	for k, name := range g.outputs {
		m[name] = outs[k]
	}
	return m, nil
}

// RunOrdered computes the graph's outputs, in graph output order, from the
// inputs in graph input order.
//
// A call in eval mode that records no gradients (inside nn.NoGrad, or
// nn.Infer of the graph) is an inference call (nn.InferCall): the
// intermediate values come from an arena kept for the next call, and a
// graph that was nn.Prepare'd runs its convolutions with the prepared,
// folded and packed weights.
func (g *Graph) RunOrdered(inputs ...*Value) ([]*Value, error) {
	if len(inputs) != len(g.inputs) {
		return nil, fmt.Errorf("graph: got %d inputs, the graph takes %d", len(inputs), len(g.inputs))
	}
	if g.Training() || nn.GradEnabled() {
		return g.runOrdered(inputs)
	}
	ts := make([]*nn.Tensor, len(inputs))
	for k, v := range inputs {
		if v != nil {
			ts[k] = v.Tensor()
		}
	}
	var outs []*Value
	var err error
	res := nn.InferCall(g, ts, func(ws []*nn.Tensor) []*nn.Tensor {
		in := make([]*Value, len(inputs))
		for k, v := range inputs {
			in[k] = v
			if ws[k] != nil {
				in[k] = FromTensor(ws[k])
			}
		}
		if outs, err = g.runOrdered(in); err != nil {
			return nil
		}
		r := make([]*nn.Tensor, len(outs))
		for k, v := range outs {
			r[k] = v.Tensor()
		}
		return r
	})
	if err != nil {
		return nil, err
	}
	for k, t := range res {
		if t != nil && t != outs[k].Tensor() {
			outs[k] = FromTensor(t)
		}
	}
	return outs, nil
}

func (g *Graph) runOrdered(inputs []*Value) ([]*Value, error) {
	g.mu.Lock()
	err := g.prepare()
	derived, chains, inChain, dies, mortal := g.derived, g.chains, g.inChain, g.dies, g.mortal
	g.mu.Unlock()
	if err != nil {
		return nil, err
	}
	env := make(map[string]*Value, len(g.consts)+len(g.live)+len(inputs)+len(g.nodes))
	for name, v := range g.consts {
		env[name] = v
	}
	for name, p := range g.live {
		if *p != nil {
			env[name] = FromTensor(*p)
		}
	}
	var key []byte
	for k, in := range g.inputs {
		v := inputs[k]
		if v == nil {
			return nil, fmt.Errorf("graph: input %q is nil", in.Name)
		}
		if err := checkInput(in, v); err != nil {
			return nil, err
		}
		env[in.Name] = v
		key = v.shapeKey(key)
	}
	g.mu.Lock()
	cached := g.cache[string(key)]
	g.mu.Unlock()
	fresh := cached == nil
	if fresh {
		cached = map[string]*Value{}
	}
	ctx := &Context{Training: g.Training()}
	run := func(k int) error {
		n := g.nodes[k]
		in := make([]*Value, len(n.Inputs))
		for j, name := range n.Inputs {
			if name != "" {
				in[j] = env[name]
			}
		}
		outs, err := runKernel(n, ctx, in)
		if err != nil {
			return err
		}
		for j, out := range n.Outputs {
			if out == "" {
				continue
			}
			if j >= len(outs) || outs[j] == nil {
				return fmt.Errorf("graph: %s: output %q was not computed", n.Describe(), out)
			}
			env[out] = outs[j]
			if derived[k] {
				cached[out] = outs[j]
			}
		}
		return nil
	}
	var lt *lifetimes // value planning, for inference calls
	if !ctx.Training && !nn.GradEnabled() {
		lt = newLifetimes(dies, mortal, env)
	}
	for k, n := range g.nodes {
		if derived[k] && !fresh {
			for _, out := range n.Outputs {
				if v, ok := cached[out]; ok {
					env[out] = v
				}
			}
			if lt != nil {
				lt.computed(n)
			}
			continue
		}
		if inChain[k] && !ctx.Training {
			continue // runs with its chain, at the chain's last node
		}
		if c := chains[k]; c != nil && !ctx.Training {
			ok, err := g.runChain(c, env)
			if err != nil {
				return nil, err
			}
			members := []int{k}
			if !ok {
				members = c.members()
				for _, j := range members {
					if err := run(j); err != nil {
						return nil, err
					}
				}
			}
			if lt != nil {
				for _, j := range members {
					lt.computed(g.nodes[j])
				}
				lt.retire(k)
			}
			continue
		}
		if lt == nil || !lt.inPlace(k, n) {
			if err := run(k); err != nil {
				return nil, err
			}
		}
		if lt != nil {
			lt.computed(n)
			lt.retire(k)
		}
	}
	if fresh {
		g.mu.Lock()
		if g.cache == nil || len(g.cache) >= maxCachedShapes {
			g.cache = map[string]map[string]*Value{}
		}
		g.cache[string(key)] = cached
		g.mu.Unlock()
	}
	res := make([]*Value, len(g.outputs))
	for k, name := range g.outputs {
		res[k] = env[name]
	}
	return res, nil
}

func checkInput(in Input, v *Value) error {
	if in.DType != Invalid && v.DType() != in.DType {
		return fmt.Errorf("graph: input %q: got %s, want %s", in.Name, v.DType(), in.DType)
	}
	if in.Shape == nil {
		return nil
	}
	if len(v.Shape()) != len(in.Shape) {
		return fmt.Errorf("graph: input %q: got shape %v, want rank %d (%s)", in.Name, v.Shape(), len(in.Shape), in.describeShape())
	}
	for k, d := range in.Shape {
		if d >= 0 && v.Shape()[k] != d {
			return fmt.Errorf("graph: input %q: got shape %v, want %s", in.Name, v.Shape(), in.describeShape())
		}
	}
	return nil
}

func (in Input) describeShape() string {
	parts := make([]string, len(in.Shape))
	for k, d := range in.Shape {
		switch {
		case d >= 0:
			parts[k] = fmt.Sprint(d)
		case k < len(in.DimNames) && in.DimNames[k] != "":
			parts[k] = in.DimNames[k]
		default:
			parts[k] = "?"
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// runKernel runs one node, turning a panic (a shape error from nn, or an
// index a malformed graph put out of range) into an error naming the node.
func runKernel(n *Node, ctx *Context, in []*Value) (outs []*Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(error); ok {
				err = fmt.Errorf("graph: %s: %w", n.Describe(), e)
			} else {
				err = fmt.Errorf("graph: %s: %v", n.Describe(), r)
			}
			if debugPanics {
				err = fmt.Errorf("%w\n%s", err, debug.Stack())
			}
		}
	}()
	outs, err = n.Kernel(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("graph: %s: %w", n.Describe(), err)
	}
	return outs, nil
}

// debugPanics adds the stack of a recovered panic to the error (tests).
var debugPanics = false

// Forward runs a graph of one float32 input and output on x; it panics with
// the error when the graph fails, as nn's modules panic on shape errors.
func (g *Graph) Forward(x *nn.Tensor) *nn.Tensor {
	if len(g.inputs) != 1 || len(g.outputs) < 1 {
		panic(fmt.Errorf("graph: Forward needs one input, the graph has %d inputs and %d outputs", len(g.inputs), len(g.outputs)))
	}
	outs, err := g.RunOrdered(FromTensor(x))
	if err != nil {
		panic(err)
	}
	if outs[0].Tensor() == nil {
		panic(fmt.Errorf("graph: output %q is %s, not float32", g.outputs[0], outs[0].DType()))
	}
	return outs[0].Tensor()
}
