package onnximport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/ckptkit/ckpt/formats/onnx"
	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/graph"
	"github.com/ckptkit/ckpt/tensor"
)

// Limits on an untrusted model. The codec already checks every tensor's
// element count against the bytes present; these bound what the graph
// may make of them.
const (
	// MaxNodes is the largest number of nodes in a graph.
	MaxNodes = 1 << 20
	// MaxValues is the largest number of named values (inputs, initializers
	// and node outputs).
	MaxValues = 1 << 21
	// MaxSubgraphDepth bounds the nesting of If, Loop and Scan bodies.
	MaxSubgraphDepth = 8
	// MaxLoopIterations bounds the iterations of a Loop or Scan node.
	MaxLoopIterations = 1 << 16
	// DefaultMaxElements is the default bound on the elements of any value a
	// node computes (1<<28 float32s are 1 GiB).
	DefaultMaxElements = 1 << 28
)

// Options tune an import.
type Options struct {
	// MaxElements bounds the element count of every value computed by a node
	// whose output size comes from data (ConstantOfShape, Expand, Tile,
	// Range, Resize, Pad, ...); 0 means DefaultMaxElements.
	MaxElements int
	// NoFold keeps nodes whose inputs are all constants in the graph instead
	// of computing them once at import.
	NoFold bool
}

// UnsupportedError reports a node the importer cannot run.
type UnsupportedError struct {
	Index  int    // the node's position in the graph
	Name   string // the node's name
	Op     string // its operator
	Domain string
	Opset  int64  // the opset version the model imports for the node's domain
	Detail string // what about the node is unsupported, "" for the operator itself
}

func (e *UnsupportedError) Error() string {
	op := e.Op
	if e.Domain != "" && e.Domain != "ai.onnx" {
		op = e.Domain + "." + op
	}
	op = graph.Printable(op)
	what := ""
	if e.Detail != "" {
		what = " with " + e.Detail
	}
	return fmt.Sprintf("onnx: node %d %q: %s (opset %d)%s is not supported", e.Index, e.Name, op, e.Opset, what)
}

// Import builds an executable graph from an ONNX model: float32
// initializers that feed weights become parameters named by their
// initializer names, the other initializers constants; nodes whose inputs
// are all constants are computed once here. A node it cannot run fails the
// import with an *UnsupportedError naming it.
func Import(m *onnx.Model, opts Options) (*graph.Graph, error) {
	if m == nil || m.Graph == nil {
		return nil, errors.New("onnx: the model has no graph")
	}
	if opts.MaxElements <= 0 {
		opts.MaxElements = DefaultMaxElements
	}
	opset := int64(-1)
	for _, o := range m.OpsetImport {
		if o.Domain == "" || o.Domain == "ai.onnx" {
			opset = o.Version
		}
	}
	if opset < 0 {
		opset = 1 // no default-domain import: only other domains' nodes, which are unsupported
	}
	im := &importer{opts: opts, opset: opset}
	return im.graph(m.Graph, nil)
}

type importer struct {
	opts  Options
	opset int64
	depth int // nesting of the graph being imported (0: the main graph)
}

// dataSlots lists, per operator, the input positions that take
// configuration rather than weights (scales, bounds, pad values, ratios):
// a float initializer used there stays a constant.
var dataSlots = map[string][]int{
	"Resize": {1, 2, 3}, "Upsample": {1}, "Clip": {1, 2}, "Pad": {1, 2, 3}, "Range": {-1}, "Dropout": {1, 2},
	"ConstantOfShape": {-1}, "Reshape": {1}, "Expand": {1}, "Tile": {1}, "Slice": {1, 2, 3, 4},
	"TopK": {1}, "OneHot": {1, 2}, "CumSum": {1}, "Where": {0}, "Shape": {-1}, "Size": {-1},
	"QuantizeLinear": {1, 2}, "DequantizeLinear": {1, 2},
}

// bufferSlots are BatchNormalization's running statistics.
var bufferSlots = map[string][]int{"BatchNormalization": {3, 4}}

func slotIn(slots []int, k int) bool {
	for _, s := range slots {
		if s == k || s == -1 {
			return true
		}
	}
	return false
}

// classify decides which float32 initializers are trainable parameters:
// those with more than one element that no node uses as configuration
// (a one-element initializer is a constant such as an epsilon, unless it
// is a Conv, Gemm or normalization weight), and which are BatchNorm
// running statistics (buffers).
func classify(g *onnx.Graph, inits map[string]*graph.Value) (isParam, isBuffer map[string]bool) {
	isParam, isBuffer = map[string]bool{}, map[string]bool{}
	config := map[string]bool{}
	weightOp := map[string]bool{"Conv": true, "ConvTranspose": true, "Gemm": true, "MatMul": true, "BatchNormalization": true,
		"InstanceNormalization": true, "LayerNormalization": true, "PRelu": true}
	used := map[string]bool{}
	scalarWeight := map[string]bool{}
	for _, n := range g.Node {
		for k, in := range n.Input {
			v := inits[in]
			if v == nil || v.DType() != graph.Float32 {
				continue
			}
			used[in] = true
			switch {
			case slotIn(bufferSlots[n.OpType], k):
				isBuffer[in] = true
			case slotIn(dataSlots[n.OpType], k):
				config[in] = true
			case weightOp[n.OpType]:
				scalarWeight[in] = true
			}
		}
	}
	for name := range used {
		if isBuffer[name] || config[name] {
			continue
		}
		if inits[name].Numel() > 1 || scalarWeight[name] {
			isParam[name] = true
		}
	}
	return isParam, isBuffer
}

// graph imports g; outer names values of enclosing graphs that g's nodes
// use (a subgraph's captured values), which become extra inputs after g's
// own.
func (im *importer) graph(g *onnx.Graph, outer []string) (*graph.Graph, error) {
	if len(g.Node) > MaxNodes {
		return nil, fmt.Errorf("onnx: %d nodes, more than the limit of %d", len(g.Node), MaxNodes)
	}
	nvals := len(g.Input) + len(g.Initializer)
	for _, n := range g.Node {
		nvals += len(n.Output)
	}
	if nvals > MaxValues {
		return nil, fmt.Errorf("onnx: %d values, more than the limit of %d", nvals, MaxValues)
	}
	inits := map[string]*graph.Value{}
	for _, t := range g.Initializer {
		if _, dup := inits[t.Name]; dup {
			return nil, fmt.Errorf("onnx: initializer %q: duplicate name", t.Name)
		}
		v, err := ValueFromProto(t)
		if err != nil {
			return nil, err
		}
		inits[t.Name] = v
	}
	var inputs []graph.Input
	seen := map[string]bool{}
	for _, in := range g.Input {
		if seen[in.Name] {
			return nil, fmt.Errorf("onnx: graph input %q: duplicate name", in.Name)
		}
		seen[in.Name] = true
		if _, ok := inits[in.Name]; ok {
			continue // an initializer that is also an input: its value is the default, kept constant
		}
		gi := graph.Input{Name: in.Name}
		if in.Type != nil && in.Type.Tensor != nil {
			dt, ok := dtypeOf(in.Type.Tensor.ElemType)
			if ok {
				gi.DType = dt
			}
			if s := in.Type.Tensor.Shape; s != nil {
				gi.Shape = make([]int, len(s.Dim))
				gi.DimNames = make([]string, len(s.Dim))
				for k, d := range s.Dim {
					gi.Shape[k] = -1
					if d.HasValue() && d.Value >= 0 && !d.HasParam() {
						gi.Shape[k] = int(d.Value)
					}
					gi.DimNames[k] = d.Param
				}
			}
		}
		inputs = append(inputs, gi)
	}
	for _, name := range outer {
		inputs = append(inputs, graph.Input{Name: name})
	}
	var outputs []string
	for _, o := range g.Output {
		outputs = append(outputs, o.Name)
	}
	gr := graph.New(inputs, outputs)

	// Values that subgraphs (If, Loop bodies) capture from this scope are
	// extra inputs of their node, so that they are computed before it.
	captured := map[int][]string{}
	for k, n := range g.Node {
		seen := map[string]bool{}
		for _, a := range n.Attribute {
			if a.Type == onnx.AttrGraph && a.G != nil {
				fv, err := freeVars(a.G, im.depth+1)
				if err != nil {
					return nil, fmt.Errorf("onnx: node %d %q: %w", k, n.Name, err)
				}
				for _, v := range fv {
					if !seen[v] {
						seen[v] = true
						captured[k] = append(captured[k], v)
					}
				}
			}
		}
	}

	isParam, isBuffer := classify(g, inits)
	consts := map[string]*graph.Value{}
	for _, t := range g.Initializer {
		v := inits[t.Name]
		switch {
		case isParam[t.Name]:
			gr.AddParameter(t.Name, v.Tensor())
		case isBuffer[t.Name]:
			gr.AddBuffer(t.Name, v.Tensor())
		default:
			consts[t.Name] = v
			gr.SetConst(t.Name, v)
		}
	}

	order, err := topoOrder(g, inits, inputs, captured)
	if err != nil {
		return nil, err
	}
	for _, k := range order {
		n := g.Node[k]
		kern, pure, shapeOnly, subs, err := im.kernel(k, n, consts, captured[k])
		if err != nil {
			return nil, err
		}
		for _, sub := range subs {
			gr.AddModule(sub.name, sub.g)
		}
		ins := append(append([]string{}, n.Input...), captured[k]...)
		node := &graph.Node{Index: k, Name: n.Name, Op: n.OpType, Inputs: ins, Outputs: n.Output, Kernel: kern, Pure: pure, ShapeOnly: shapeOnly, Source: n,
			Fuse: im.fusion(n, consts)}
		if pure && !im.opts.NoFold && allConst(ins, consts) {
			in := make([]*graph.Value, len(ins))
			for j, name := range ins {
				in[j] = consts[name]
			}
			outs, err := foldNode(node, in)
			if err != nil {
				return nil, fmt.Errorf("onnx: %w", err)
			}
			for j, name := range n.Output {
				if name != "" && j < len(outs) && outs[j] != nil {
					consts[name] = outs[j]
					gr.SetConst(name, outs[j])
				}
			}
			continue
		}
		gr.AddNode(node)
	}
	// An output that is a graph input or constant directly needs an Identity.
	if err := gr.Prepare(); err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	return gr, nil
}

func allConst(names []string, consts map[string]*graph.Value) bool {
	for _, n := range names {
		if n != "" && consts[n] == nil {
			return false
		}
	}
	return true
}

func foldNode(n *graph.Node, in []*graph.Value) (outs []*graph.Value, err error) {
	g := graph.New(nil, nil)
	for j, name := range n.Inputs {
		if name != "" {
			g.SetConst(name, in[j])
		}
	}
	g.AddNode(n)
	var names []string
	for _, o := range n.Outputs {
		if o != "" {
			names = append(names, o)
		}
	}
	g.SetOutputs(names)
	res, err := g.RunOrdered()
	if err != nil {
		return nil, err
	}
	outs = make([]*graph.Value, len(n.Outputs))
	j := 0
	for k, o := range n.Outputs {
		if o != "" {
			outs[k] = res[j]
			j++
		}
	}
	return outs, nil
}

// topoOrder returns the nodes in an order where every input is computed
// before it is used, failing on a cycle or an undefined input.
func topoOrder(g *onnx.Graph, inits map[string]*graph.Value, inputs []graph.Input, captured map[int][]string) ([]int, error) {
	producer := map[string]int{}
	for k, n := range g.Node {
		for _, o := range n.Output {
			if o == "" {
				continue
			}
			if _, dup := producer[o]; dup {
				return nil, fmt.Errorf("onnx: node %d %q: output %q is also produced by node %d", k, n.Name, o, producer[o])
			}
			if _, ok := inits[o]; ok {
				return nil, fmt.Errorf("onnx: node %d %q: output %q is also an initializer", k, n.Name, o)
			}
			producer[o] = k
		}
	}
	isInput := map[string]bool{}
	for _, in := range inputs {
		isInput[in.Name] = true
	}
	state := make([]uint8, len(g.Node)) // 0 new, 1 on the stack, 2 done
	order := make([]int, 0, len(g.Node))
	type frame struct{ node, next int }
	for root := range g.Node {
		if state[root] != 0 {
			continue
		}
		stack := []frame{{root, 0}}
		state[root] = 1
		for len(stack) > 0 {
			f := &stack[len(stack)-1]
			n := g.Node[f.node]
			if f.next < len(n.Input)+len(captured[f.node]) {
				var in string
				if f.next < len(n.Input) {
					in = n.Input[f.next]
				} else {
					in = captured[f.node][f.next-len(n.Input)]
				}
				f.next++
				if in == "" || isInput[in] || inits[in] != nil {
					continue
				}
				p, ok := producer[in]
				if !ok {
					return nil, fmt.Errorf("onnx: node %d %q (%s): input %q is not a graph input, an initializer or a node output", f.node, n.Name, graph.Printable(n.OpType), in)
				}
				switch state[p] {
				case 1:
					return nil, fmt.Errorf("onnx: node %d %q (%s): the graph has a cycle through %q", f.node, n.Name, graph.Printable(n.OpType), in)
				case 0:
					state[p] = 1
					stack = append(stack, frame{p, 0})
				}
				continue
			}
			state[f.node] = 2
			order = append(order, f.node)
			stack = stack[:len(stack)-1]
		}
	}
	return order, nil
}

func dtypeOf(t onnx.DataType) (graph.DType, bool) {
	switch t {
	case onnx.Float:
		return graph.Float32, true
	case onnx.Double:
		return graph.Float64, true
	case onnx.Float16:
		return graph.Float16, true
	case onnx.BFloat16:
		return graph.BFloat16, true
	case onnx.Int8:
		return graph.Int8, true
	case onnx.Int16:
		return graph.Int16, true
	case onnx.Int32:
		return graph.Int32, true
	case onnx.Int64:
		return graph.Int64, true
	case onnx.Uint8:
		return graph.Uint8, true
	case onnx.Uint16:
		return graph.Uint16, true
	case onnx.Uint32:
		return graph.Uint32, true
	case onnx.Uint64:
		return graph.Uint64, true
	case onnx.Bool:
		return graph.Bool, true
	}
	return graph.Invalid, false
}

// DataTypeOf returns the ONNX data type of a graph dtype.
func DataTypeOf(d graph.DType) onnx.DataType {
	for _, t := range []onnx.DataType{onnx.Float, onnx.Double, onnx.Float16, onnx.BFloat16, onnx.Int8, onnx.Int16, onnx.Int32, onnx.Int64, onnx.Uint8, onnx.Uint16, onnx.Uint32, onnx.Uint64, onnx.Bool} {
		if g, _ := dtypeOf(t); g == d {
			return t
		}
	}
	return onnx.Undefined
}

// ValueFromProto converts a TensorProto (an initializer, a Constant's
// value, a test data file) into a Value.
func ValueFromProto(t *onnx.TensorProto) (*graph.Value, error) {
	dt, ok := dtypeOf(t.DataType)
	if !ok {
		return nil, fmt.Errorf("onnx: tensor %q: data type %s is not supported", t.Name, t.DataType)
	}
	shape := make([]int, len(t.Dims))
	for k, d := range t.Dims {
		shape[k] = int(d)
	}
	switch dt {
	case graph.Uint16, graph.Uint32, graph.Uint64:
		u, err := t.Unsigned()
		if err != nil {
			return nil, err
		}
		v := make([]int64, len(u))
		for k, e := range u {
			v[k] = int64(e)
		}
		return graph.FromInt64s(dt, shape, v), nil
	}
	x, err := t.Tensor()
	if err != nil {
		return nil, err
	}
	b, err := x.Bytes()
	if err != nil {
		return nil, fmt.Errorf("onnx: tensor %q: %w", t.Name, err)
	}
	n := int(x.NumElements())
	le := binary.LittleEndian
	switch dt {
	case graph.Float32:
		f, err := tensor.DecodeFloat32s(tensor.Float32, b, make([]float32, n))
		if err != nil {
			return nil, fmt.Errorf("onnx: tensor %q: %w", t.Name, err)
		}
		return graph.FromTensor(nn.New(f, shape...)), nil
	case graph.Float64, graph.Float16, graph.BFloat16:
		f := make([]float64, n)
		for k := range f {
			switch dt {
			case graph.Float64:
				f[k] = math.Float64frombits(le.Uint64(b[8*k:]))
			case graph.Float16:
				f[k] = float64(tensor.Float16ToFloat32(le.Uint16(b[2*k:])))
			default:
				f[k] = float64(tensor.BFloat16ToFloat32(le.Uint16(b[2*k:])))
			}
		}
		return graph.FromFloat64s(dt, shape, f), nil
	}
	v := make([]int64, n)
	for k := range v {
		switch dt {
		case graph.Int8:
			v[k] = int64(int8(b[k]))
		case graph.Uint8, graph.Bool:
			v[k] = int64(b[k])
		case graph.Int16:
			v[k] = int64(int16(le.Uint16(b[2*k:])))
		case graph.Int32:
			v[k] = int64(int32(le.Uint32(b[4*k:])))
		case graph.Int64:
			v[k] = int64(le.Uint64(b[8*k:]))
		}
	}
	return graph.FromInt64s(dt, shape, v), nil
}

// ProtoFromValue converts a Value into a TensorProto named name, elements
// as raw_data.
func ProtoFromValue(name string, v *graph.Value) (*onnx.TensorProto, error) {
	dt := DataTypeOf(v.DType())
	tdt, ok := dt.DType()
	t := &onnx.TensorProto{Name: name, DataType: dt}
	dims := make([]int64, v.Rank())
	for k, d := range v.Shape() {
		dims[k] = int64(d)
	}
	n := v.Numel()
	le := binary.LittleEndian
	if !ok {
		t.Dims = dims
		for _, e := range v.Int64s() {
			if dt == onnx.Uint16 {
				t.Int32Data = append(t.Int32Data, int32(e))
			} else {
				t.Uint64Data = append(t.Uint64Data, uint64(e))
			}
		}
		return t, nil
	}
	b := make([]byte, n*tdt.Size())
	switch {
	case v.DType().IsFloat():
		f := v.Float64s()
		for k, e := range f {
			switch v.DType() {
			case graph.Float32:
				le.PutUint32(b[4*k:], math.Float32bits(float32(e)))
			case graph.Float64:
				le.PutUint64(b[8*k:], math.Float64bits(e))
			case graph.Float16:
				le.PutUint16(b[2*k:], tensor.Float32ToFloat16(float32(e)))
			default:
				le.PutUint16(b[2*k:], tensor.Float32ToBFloat16(float32(e)))
			}
		}
	default:
		for k, e := range v.Int64s() {
			switch tdt.Size() {
			case 1:
				b[k] = byte(e)
			case 2:
				le.PutUint16(b[2*k:], uint16(e))
			case 4:
				le.PutUint32(b[4*k:], uint32(e))
			default:
				le.PutUint64(b[8*k:], uint64(e))
			}
		}
	}
	x, err := tensor.FromBytes(tdt, dims, b)
	if err != nil {
		return nil, fmt.Errorf("onnx: tensor %q: %w", name, err)
	}
	if err := t.SetData(x); err != nil {
		return nil, err
	}
	return t, nil
}

// nodeCtx is what an operator's builder knows about its node.
type nodeCtx struct {
	im       *importer
	captured []string   // outer values the node's subgraphs use, its extra inputs
	subs     []subgraph // the subgraphs the builder imported
	index    int
	n        *onnx.Node
	opset    int64
	opts     *Options
	attrs    map[string]*onnx.Attribute
	consts   map[string]*graph.Value
}

func (c *nodeCtx) unsupported(format string, args ...any) error {
	return &UnsupportedError{Index: c.index, Name: c.n.Name, Op: c.n.OpType, Domain: c.n.Domain, Opset: c.opset, Detail: fmt.Sprintf(format, args...)}
}

func (c *nodeCtx) errorf(format string, args ...any) error {
	return fmt.Errorf("onnx: node %d %q (%s): %s", c.index, c.n.Name, graph.Printable(c.n.OpType), fmt.Sprintf(format, args...))
}

func (c *nodeCtx) has(name string) bool { return c.attrs[name] != nil }

func (c *nodeCtx) int(name string, def int64) int64 {
	if a := c.attrs[name]; a != nil {
		return a.I
	}
	return def
}

func (c *nodeCtx) float(name string, def float32) float32 {
	if a := c.attrs[name]; a != nil {
		return a.F
	}
	return def
}

func (c *nodeCtx) str(name, def string) string {
	if a := c.attrs[name]; a != nil {
		return string(a.S)
	}
	return def
}

func (c *nodeCtx) ints(name string, def []int64) []int64 {
	if a := c.attrs[name]; a != nil {
		return a.Ints
	}
	return def
}

func (c *nodeCtx) floats(name string, def []float32) []float32 {
	if a := c.attrs[name]; a != nil {
		return a.Floats
	}
	return def
}

// constInput returns input k when it is a constant, or nil.
func (c *nodeCtx) constInput(k int) *graph.Value {
	if k >= len(c.n.Input) || c.n.Input[k] == "" {
		return nil
	}
	return c.consts[c.n.Input[k]]
}

// builder makes a node's kernel. pure is false for random or
// training-dependent ops; shapeOnly for ops that read only shapes.
type builder func(c *nodeCtx) (graph.Kernel, error)

var (
	registry     = map[string]builder{}
	impure       = map[string]bool{"Dropout": true, "BatchNormalization": true, "RandomNormal": true, "RandomUniform": true, "RandomNormalLike": true, "RandomUniformLike": true, "Bernoulli": true, "Multinomial": true}
	shapeOnlyOps = map[string]bool{"Shape": true, "Size": true}
)

func register(b builder, ops ...string) {
	for _, op := range ops {
		registry[op] = b
	}
}

// Supported lists the operators of the default domain the importer knows
// (some attribute values of some of them are still unsupported).
func Supported() []string {
	var out []string
	for op := range registry {
		out = append(out, op)
	}
	return out
}

func (im *importer) kernel(k int, n *onnx.Node, consts map[string]*graph.Value, captured []string) (kern graph.Kernel, pure, shapeOnly bool, subs []subgraph, err error) {
	defer func() {
		if r := recover(); r != nil {
			kern, err = nil, fmt.Errorf("onnx: node %d %q (%s): malformed: %v", k, n.Name, graph.Printable(n.OpType), r)
		}
	}()
	c := &nodeCtx{index: k, n: n, opset: im.opset, opts: &im.opts, attrs: map[string]*onnx.Attribute{}, consts: consts, im: im, captured: captured}
	kern, pure, shapeOnly, err = im.build(c)
	return kern, pure, shapeOnly, c.subs, err
}

// subgraph is an imported If branch or Loop body, registered as a child
// module of the enclosing graph so that its parameters are the graph's.
type subgraph struct {
	name string
	g    *graph.Graph
}

func (im *importer) build(c *nodeCtx) (graph.Kernel, bool, bool, error) {
	k, n := c.index, c.n
	for _, a := range n.Attribute {
		c.attrs[a.Name] = a
		allowed := a.Type == onnx.AttrGraph && (n.OpType == "If" || n.OpType == "Loop" || n.OpType == "Scan") && (n.Domain == "" || n.Domain == "ai.onnx")
		if (a.Type == onnx.AttrGraph || a.Type == onnx.AttrGraphs) && !allowed || a.RefAttrName != "" {
			return nil, false, false, c.unsupported("subgraph or reference attribute %q", a.Name)
		}
	}
	if n.Domain == trainingDomain && (n.OpType == "Adagrad" || n.OpType == "Momentum" || n.OpType == "Adam") {
		c.opset = 1
	} else if n.Domain != "" && n.Domain != "ai.onnx" {
		return nil, false, false, c.unsupported("")
	}
	b := registry[n.OpType]
	if b == nil {
		return nil, false, false, &UnsupportedError{Index: k, Name: n.Name, Op: n.OpType, Opset: im.opset}
	}
	kern, err := b(c)
	if err != nil {
		return nil, false, false, err
	}
	maxEl := im.opts.MaxElements
	op := n.OpType
	checked := func(ctx *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		if err := precheck(op, in, maxEl); err != nil {
			return nil, err
		}
		outs, err := kern(ctx, in)
		if err != nil {
			return nil, err
		}
		for _, o := range outs {
			if o != nil && o.Numel() > maxEl {
				return nil, fmt.Errorf("output of %d elements, more than the limit of %d", o.Numel(), maxEl)
			}
		}
		return outs, nil
	}
	return checked, !impure[n.OpType] && len(c.subs) == 0, shapeOnlyOps[n.OpType], nil
}

// errorsAs is errors.As for *UnsupportedError.
func errorsAs(err error) (*UnsupportedError, bool) {
	var u *UnsupportedError
	ok := errors.As(err, &u)
	return u, ok
}

// IsUnsupported reports whether err (from Import) is an *UnsupportedError.
func IsUnsupported(err error) bool { _, ok := errorsAs(err); return ok }

var _ = strings.Join

func onnxDataType(v int64) onnx.DataType { return onnx.DataType(int32(v)) }

// broadcasting lists the operators whose output is the broadcast of their
// inputs' shapes.
var broadcasting = map[string]bool{"Add": true, "Sub": true, "Mul": true, "Div": true, "Pow": true, "Mod": true, "BitShift": true,
	"Equal": true, "Less": true, "Greater": true, "LessOrEqual": true, "GreaterOrEqual": true, "And": true, "Or": true, "Xor": true,
	"Where": true, "Max": true, "Min": true, "Sum": true, "Mean": true, "PRelu": true}

// precheck refuses, before any allocation, a broadcast or a matrix
// product whose result would exceed limit elements.
func precheck(op string, in []*graph.Value, limit int) error {
	switch {
	case broadcasting[op]:
		var shapes [][]int
		for _, v := range in {
			if v != nil {
				shapes = append(shapes, v.Shape())
			}
		}
		s, err := broadcast(shapes...)
		if err != nil {
			return err
		}
		return checkElems(numelChecked(s, limit), limit)
	case op == "MatMul" || op == "MatMulInteger" || op == "Gemm":
		if len(in) < 2 || in[0] == nil || in[1] == nil || in[0].Rank() < 1 || in[1].Rank() < 1 {
			return nil
		}
		a, b := in[0].Shape(), in[1].Shape()
		if len(a) < 2 || len(b) < 2 {
			return nil
		}
		batch, err := broadcast(a[:len(a)-2], b[:len(b)-2])
		if err != nil {
			return err
		}
		s := append(batch, a[len(a)-2], b[len(b)-1], a[len(a)-1])
		return checkElems(numelChecked(s, 16*limit)/16, limit)
	}
	return nil
}

// numelChecked multiplies dims, saturating above limit (a negative or
// oversized dimension counts as too many elements).
func numelChecked(s []int, limit int) int {
	for _, d := range s {
		if d == 0 {
			return 0
		}
	}
	n := 1
	for _, d := range s {
		if d < 0 || d > limit {
			return limit + 1
		}
		n *= d
		if n > limit {
			return limit + 1
		}
	}
	return n
}

// Check returns every node of m's main graph that the importer cannot
// run, in graph order (an import stops at the first). Errors other than
// unsupported operators (a malformed graph) are returned as err.
func Check(m *onnx.Model) ([]*UnsupportedError, error) {
	if m == nil || m.Graph == nil {
		return nil, errors.New("onnx: the model has no graph")
	}
	opset := int64(1)
	for _, o := range m.OpsetImport {
		if o.Domain == "" || o.Domain == "ai.onnx" {
			opset = o.Version
		}
	}
	im := &importer{opts: Options{MaxElements: DefaultMaxElements}, opset: opset}
	var out []*UnsupportedError
	for k, n := range m.Graph.Node {
		if _, _, _, _, err := im.kernel(k, n, map[string]*graph.Value{}, nil); err != nil {
			if u, ok := errorsAs(err); ok {
				out = append(out, u)
			}
		}
	}
	return out, nil
}

// freeVars returns the names g's nodes (and nested subgraphs) use without
// defining them: values captured from enclosing graphs, in first-use order.
func freeVars(g *onnx.Graph, depth int) ([]string, error) {
	if depth > MaxSubgraphDepth {
		return nil, fmt.Errorf("subgraphs nested deeper than %d", MaxSubgraphDepth)
	}
	defined := map[string]bool{"": true}
	for _, v := range g.Input {
		defined[v.Name] = true
	}
	for _, t := range g.Initializer {
		defined[t.Name] = true
	}
	for _, n := range g.Node {
		for _, o := range n.Output {
			defined[o] = true
		}
	}
	var out []string
	seen := map[string]bool{}
	use := func(name string) {
		if !defined[name] && !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	for _, n := range g.Node {
		for _, in := range n.Input {
			use(in)
		}
		for _, a := range n.Attribute {
			if a.Type == onnx.AttrGraph && a.G != nil {
				fv, err := freeVars(a.G, depth+1)
				if err != nil {
					return nil, err
				}
				for _, v := range fv {
					use(v)
				}
			}
		}
	}
	for _, o := range g.Output {
		use(o.Name)
	}
	return out, nil
}

// importSub imports the graph attribute name of c's node as a subgraph
// whose inputs are its own followed by the node's captured values.
func (c *nodeCtx) importSub(name string) (*graph.Graph, error) {
	a := c.attrs[name]
	if a == nil || a.G == nil {
		return nil, c.errorf("no %s", name)
	}
	if c.im.depth+1 > MaxSubgraphDepth {
		return nil, c.errorf("subgraphs nested deeper than %d", MaxSubgraphDepth)
	}
	sub := &importer{opts: c.im.opts, opset: c.im.opset, depth: c.im.depth + 1}
	g, err := sub.graph(a.G, c.captured)
	if err != nil {
		return nil, fmt.Errorf("%w (in the %s of node %d %q)", err, name, c.index, c.n.Name)
	}
	c.subs = append(c.subs, subgraph{name: fmt.Sprintf("%s_%d", name, c.index), g: g})
	return g, nil
}
