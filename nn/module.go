package nn

import (
	"fmt"
	"reflect"
	"strings"
)

// Module is a layer or a network: it runs on a tensor and owns parameters,
// buffers and child modules through an embedded [Base].
//
// A user-defined module embeds nn.Base, registers its fields in its
// constructor, and implements Forward:
//
//	type Net struct {
//		nn.Base
//		Conv *nn.Conv2d
//		FC   *nn.Linear
//	}
//
//	func NewNet() *Net {
//		n := &Net{Conv: nn.NewConv2d(nil, 3, 8, 3), FC: nn.NewLinear(nil, 8, 10, true)}
//		n.RegisterModule("conv", &n.Conv) // a pointer to the field: n.Conv = ... later re-registers
//		n.RegisterModule("fc", &n.FC)
//		return n
//	}
//
//	func (n *Net) Forward(x *nn.Tensor) *nn.Tensor { ... }
//
// Registration order is PyTorch's __init__ assignment order; it fixes the
// order of parameters, state_dict keys, and the printed tree.
//
// Every method besides Forward comes from the embedded Base, so any Module
// value can be put in eval mode, frozen, saved or loaded.
type Module interface {
	// Forward runs the module on x.
	Forward(x *Tensor) *Tensor

	Train()
	Eval()
	Training() bool
	NamedParameters() []NamedTensor
	Parameters() []*Tensor
	TrainableParameters() []*Tensor
	NamedBuffers() []NamedTensor
	NamedChildren() []NamedModule
	Children() []Module
	Child(name string) Module
	StateDict() StateDict
	LoadStateDict(src Source, strict bool) (*LoadReport, error)
	RequiresGrad(v bool)
	ZeroGrad()

	base() *Base
}

// ExtraRepr is implemented by modules whose printed form carries arguments,
// as torch's extra_repr: Conv2d prints "3, 64, kernel_size=(7, 7), ...".
type ExtraRepr interface {
	ExtraRepr() string
}

// TypeNamer is implemented by modules whose printed name differs from their Go
// type name.
type TypeNamer interface {
	TypeName() string
}

// Base holds a module's registrations: its parameters, buffers and children,
// each in registration order, and its training flag. Embed it in every module.
// The zero value is an empty module in training mode, as torch creates them.
type Base struct {
	params   []paramReg
	buffers  []bufReg
	children []childReg
	eval     bool
	frozen   bool  // set by Freeze: eval mode whatever Train says
	plan     *plan // set by Prepare: the folded, packed weights Infer runs m with
}

type paramReg struct {
	name string
	p    **Tensor
}

type bufReg struct {
	name       string
	p          **Tensor
	i64        *int64
	i64t       **Int64Tensor // an integer tensor buffer (see RegisterInt64TensorBuffer)
	persistent bool
}

type childReg struct {
	name string
	get  func() Module
	set  func(Module) bool
}

func (b *Base) base() *Base { return b }

// Parameter marks the leaf tensor t as a trainable parameter (requires grad)
// and returns it, as torch.nn.Parameter(t) does. A parameter is a *Tensor
// registered on a module with [Base.RegisterParameter]; its data is
// [Tensor.Data], its gradient [Tensor.Grad], and [Tensor.SetRequiresGrad]
// (or [Base.RequiresGrad] on a subtree) freezes it.
func Parameter(t *Tensor) *Tensor { return t.SetRequiresGrad(true) }

// RegisterParameter registers the tensor field *p as parameter name, and marks
// it as requiring grad. The field is read at each use, so assigning a new
// tensor to it later replaces the parameter; a nil field (an absent bias) is
// skipped, as torch skips None parameters.
func (b *Base) RegisterParameter(name string, p **Tensor) {
	b.checkName(name)
	if *p != nil && (*p).fn == nil {
		(*p).requiresGrad = true
	}
	b.params = append(b.params, paramReg{name, p})
	MarkModified()
}

// RegisterBuffer registers the tensor field *p as a float32 buffer (state that
// is not trained, such as running_mean). Non-persistent buffers are left out of
// the state dict.
func (b *Base) RegisterBuffer(name string, p **Tensor, persistent bool) {
	b.checkName(name)
	b.buffers = append(b.buffers, bufReg{name: name, p: p, persistent: persistent})
	MarkModified()
}

// RegisterInt64Buffer registers the int64 scalar *p as a persistent buffer,
// stored as a 0-dimensional int64 tensor (num_batches_tracked).
func (b *Base) RegisterInt64Buffer(name string, p *int64) {
	b.checkName(name)
	b.buffers = append(b.buffers, bufReg{name: name, i64: p, persistent: true})
}

// RegisterModule registers the field that ptr points to as child module name.
// ptr must be a non-nil pointer to a field whose type implements Module (such
// as **Linear or *Module); the field is read at each walk, so assigning a new
// module to it (a new classifier head) needs no re-registration, and a nil
// field is skipped. A pointer to a module held by value (&n.Seq for a field
// Seq nn.Sequential) registers that module. Anything else panics.
func (b *Base) RegisterModule(name string, ptr any) {
	v := reflect.ValueOf(ptr)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		panic(fmt.Sprintf("nn: RegisterModule(%q): want a pointer to a module field, got %T", name, ptr))
	}
	f := v.Elem()
	mt := reflect.TypeFor[Module]()
	if !f.Type().Implements(mt) && f.Type() != mt {
		if m, ok := ptr.(Module); ok { // a module held by value: &n.Seq
			b.checkName(name)
			b.children = append(b.children, b.fixedChild(name, m))
			return
		}
		panic(fmt.Sprintf("nn: RegisterModule(%q): %s does not implement nn.Module", name, f.Type()))
	}
	b.checkName(name)
	get := func() Module {
		if f.IsNil() {
			return nil
		}
		m, _ := f.Interface().(Module)
		return m
	}
	set := func(m Module) bool {
		mv := reflect.ValueOf(m)
		if m == nil {
			f.Set(reflect.Zero(f.Type()))
			return true
		}
		if !mv.Type().AssignableTo(f.Type()) {
			return false
		}
		f.Set(mv)
		return true
	}
	b.children = append(b.children, childReg{name, get, set})
}

// AddModule registers m as child module name (torch's add_module), for
// children held in no field, such as the numbered layers of Sequential. If a
// child of that name exists it is replaced in place.
func (b *Base) AddModule(name string, m Module) {
	MarkModified()
	for i := range b.children {
		if b.children[i].name == name {
			b.setChildAt(i, m)
			return
		}
	}
	b.checkName(name)
	b.children = append(b.children, b.fixedChild(name, m))
}

// addChildFunc registers child name, read and replaced through get and set,
// for containers that keep their children in a list of their own.
func (b *Base) addChildFunc(name string, get func() Module, set func(Module) bool) {
	MarkModified()
	b.checkName(name)
	b.children = append(b.children, childReg{name, get, set})
}

func (b *Base) fixedChild(name string, m Module) childReg {
	c := childReg{name: name}
	c.get = func() Module { return m }
	c.set = func(n Module) bool { m = n; return true }
	return c
}

func (b *Base) setChildAt(i int, m Module) {
	MarkModified()
	if !b.children[i].set(m) {
		panic(fmt.Sprintf("nn: cannot assign %T to child %q", m, b.children[i].name))
	}
}

// SetChild replaces the registered child name with m (torch's setattr on a
// module attribute) and reports whether the child existed. For a child
// registered with RegisterModule, m must be assignable to the field's type.
func (b *Base) SetChild(name string, m Module) bool {
	for i := range b.children {
		if b.children[i].name == name {
			b.setChildAt(i, m)
			return true
		}
	}
	return false
}

func (b *Base) checkName(name string) {
	if name == "" || strings.Contains(name, ".") {
		panic(fmt.Sprintf("nn: invalid registration name %q", name))
	}
	for _, p := range b.params {
		if p.name == name {
			panic(fmt.Sprintf("nn: %q registered twice", name))
		}
	}
	for _, p := range b.buffers {
		if p.name == name {
			panic(fmt.Sprintf("nn: %q registered twice", name))
		}
	}
	for _, p := range b.children {
		if p.name == name {
			panic(fmt.Sprintf("nn: %q registered twice", name))
		}
	}
}

// NamedTensor is a tensor with its dotted state_dict name.
type NamedTensor struct {
	Name   string
	Tensor *Tensor
}

// NamedModule is a module with its dotted name ("" for the root).
type NamedModule struct {
	Name   string
	Module Module
}

// Training reports whether the module is in training mode.
func (b *Base) Training() bool { return !b.eval }

// Train puts the module and all its descendants in training mode
// (BatchNorm uses batch statistics, Dropout drops).
func (b *Base) Train() { b.setMode(false) }

// Eval puts the module and all its descendants in evaluation mode.
func (b *Base) Eval() { b.setMode(true) }

func (b *Base) setMode(eval bool) {
	MarkModified()
	b.eval = eval || b.frozen
	for _, c := range b.NamedChildren() {
		c.Module.base().setMode(eval)
	}
}

// NamedChildren returns the direct children in registration order.
func (b *Base) NamedChildren() []NamedModule {
	var out []NamedModule
	for _, c := range b.children {
		if m := c.get(); m != nil {
			out = append(out, NamedModule{c.name, m})
		}
	}
	return out
}

// Children returns the direct children in registration order.
func (b *Base) Children() []Module {
	var out []Module
	for _, c := range b.NamedChildren() {
		out = append(out, c.Module)
	}
	return out
}

// Child returns the direct child called name, or nil.
func (b *Base) Child(name string) Module {
	for _, c := range b.children {
		if c.name == name {
			return c.get()
		}
	}
	return nil
}

// NamedModules returns m and all its descendants, depth first in registration
// order, with dotted names (the root is ""), as torch's named_modules; a
// module reachable twice is listed once.
func NamedModules(m Module) []NamedModule {
	seen := map[*Base]bool{}
	var out []NamedModule
	var walk func(prefix string, m Module)
	walk = func(prefix string, m Module) {
		b := m.base()
		if seen[b] {
			return
		}
		seen[b] = true
		out = append(out, NamedModule{prefix, m})
		for _, c := range b.NamedChildren() {
			walk(join(prefix, c.Name), c.Module)
		}
	}
	walk("", m)
	return out
}

// Modules returns m and all its descendants in the order of NamedModules.
func Modules(m Module) []Module {
	var out []Module
	for _, nm := range NamedModules(m) {
		out = append(out, nm.Module)
	}
	return out
}

// Apply calls fn on every descendant of m and then on m itself (children
// first, as torch's apply), and returns m.
func Apply(m Module, fn func(Module)) Module {
	for _, c := range m.base().Children() {
		Apply(c, fn)
	}
	fn(m)
	return m
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// walkModules visits every module under b (b itself as prefix ""), each once.
func (b *Base) walkModules(fn func(prefix string, b *Base)) {
	seen := map[*Base]bool{}
	var walk func(prefix string, b *Base)
	walk = func(prefix string, b *Base) {
		if seen[b] {
			return
		}
		seen[b] = true
		fn(prefix, b)
		for _, c := range b.NamedChildren() {
			walk(join(prefix, c.Name), c.Module.base())
		}
	}
	walk("", b)
}

// NamedParameters returns every parameter of the module and its descendants
// with dotted names, in torch's order; a tensor shared by two modules is
// listed once.
func (b *Base) NamedParameters() []NamedTensor {
	var out []NamedTensor
	seen := map[*Tensor]bool{}
	b.walkModules(func(prefix string, m *Base) {
		for _, p := range m.params {
			if t := *p.p; t != nil && !seen[t] {
				seen[t] = true
				out = append(out, NamedTensor{join(prefix, p.name), t})
			}
		}
	})
	return out
}

// Parameters returns the tensors of NamedParameters.
func (b *Base) Parameters() []*Tensor {
	var out []*Tensor
	for _, p := range b.NamedParameters() {
		out = append(out, p.Tensor)
	}
	return out
}

// TrainableParameters returns the parameters that require grad, the ones an
// optimizer should update.
func (b *Base) TrainableParameters() []*Tensor {
	var out []*Tensor
	for _, p := range b.NamedParameters() {
		if p.Tensor.requiresGrad {
			out = append(out, p.Tensor)
		}
	}
	return out
}

// NamedBuffers returns every float32 buffer of the module and its descendants
// (persistent or not) with dotted names. Int64 buffers such as
// num_batches_tracked are not tensors of this package; they appear in
// StateDict.
func (b *Base) NamedBuffers() []NamedTensor {
	var out []NamedTensor
	b.walkModules(func(prefix string, m *Base) {
		for _, r := range m.buffers {
			if r.p != nil && *r.p != nil {
				out = append(out, NamedTensor{join(prefix, r.name), *r.p})
			}
		}
	})
	return out
}

// RequiresGrad sets requires_grad on every parameter of the module and its
// descendants; RequiresGrad(false) freezes a subtree, whose parameters then
// get no gradient memory or time.
func (b *Base) RequiresGrad(v bool) {
	for _, p := range b.NamedParameters() {
		p.Tensor.SetRequiresGrad(v)
	}
}

// ZeroGrad drops the gradients of every parameter (set_to_none=True).
func (b *Base) ZeroGrad() {
	for _, p := range b.NamedParameters() {
		p.Tensor.grad = nil
	}
}

// NumParameters returns the total number of parameter elements.
func (b *Base) NumParameters() int {
	n := 0
	for _, p := range b.NamedParameters() {
		n += p.Tensor.Numel()
	}
	return n
}
