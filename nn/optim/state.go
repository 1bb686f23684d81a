package optim

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"sort"
	"strconv"
	"strings"

	"github.com/ckptkit/ckpt/formats"
	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/pickle"
	"github.com/ckptkit/ckpt/tensor"
)

// StateDict is an optimizer's state in torch's layout
// (optimizer.state_dict()):
//
//	{"state": {0: {"momentum_buffer": T}, 1: {"step": T, "exp_avg": T, "exp_avg_sq": T}, ...},
//	 "param_groups": [{"lr": 0.1, "momentum": 0.9, ..., "params": [0, 1, 2]}, ...]}
//
// Parameters are numbered through the groups in order. State holds an entry
// for each parameter that has been updated; a nil tensor stands for torch's
// None (SGD without momentum stores momentum_buffer=None). "step" is a
// 0-dimensional float32 tensor, as torch 1.12 and later save it.
//
// ParamGroups values are float64, bool, string, nil (None), []float64
// (betas) and []int ("params"). Keys this package does not use (foreach,
// capturable, ...) are kept as they are.
type StateDict struct {
	State       map[int]map[string]*nn.Tensor
	ParamGroups []map[string]any
}

// groupKeys lists the keys torch 1.13 writes in each param group, in its
// order (params comes last in a state_dict).
var groupKeys = map[Algorithm][]string{
	SGD:   {"lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize", "foreach", "differentiable"},
	Adam:  {"lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "foreach", "capturable", "differentiable", "fused"},
	AdamW: {"lr", "betas", "eps", "weight_decay", "amsgrad", "foreach", "maximize", "capturable"},
}

func (h *Hyper) get(key string) (any, bool) {
	switch key {
	case "lr":
		return h.LR, true
	case "momentum":
		return h.Momentum, true
	case "dampening":
		return h.Dampening, true
	case "weight_decay":
		return h.WeightDecay, true
	case "nesterov":
		return h.Nesterov, true
	case "maximize":
		return h.Maximize, true
	case "betas":
		return []float64{h.Betas[0], h.Betas[1]}, true
	case "eps":
		return h.Eps, true
	case "amsgrad":
		return h.AMSGrad, true
	case "foreach": // None: torch picks the implementation
		return nil, true
	case "fused", "capturable", "differentiable":
		return false, true
	}
	return nil, false
}

// StateDict returns the optimizer's state in torch's layout. Tensors are
// copies.
func (o *Optimizer) StateDict() *StateDict {
	sd := &StateDict{State: map[int]map[string]*nn.Tensor{}}
	idx := 0
	for _, g := range o.Groups {
		pg := map[string]any{}
		for _, k := range groupKeys[o.Algorithm] {
			v, _ := g.get(k)
			pg[k] = v
		}
		if g.InitialLR != 0 {
			pg["initial_lr"] = g.InitialLR
		}
		ids := make([]int, len(g.Params))
		for j, p := range g.Params {
			ids[j] = idx
			if st := o.state[p]; st != nil {
				if m := st.tensors(o.Algorithm, p.Shape()); len(m) > 0 {
					sd.State[idx] = m
				}
			}
			idx++
		}
		pg["params"] = ids
		sd.ParamGroups = append(sd.ParamGroups, pg)
	}
	return sd
}

func (st *paramState) tensors(alg Algorithm, shape []int) map[string]*nn.Tensor {
	cp := func(v []float32) *nn.Tensor { return nn.New(append([]float32(nil), v...), shape...) }
	m := map[string]*nn.Tensor{}
	if alg == SGD {
		if st.momentum != nil {
			m["momentum_buffer"] = cp(st.momentum)
		} else if st.hasMomSlot {
			m["momentum_buffer"] = nil
		}
		return m
	}
	if st.expAvg == nil {
		return m
	}
	m["step"] = nn.Scalar(float32(st.step))
	m["exp_avg"] = cp(st.expAvg)
	m["exp_avg_sq"] = cp(st.expAvgSq)
	if st.maxExpAvg != nil {
		m["max_exp_avg_sq"] = cp(st.maxExpAvg)
	}
	return m
}

// LoadStateDict replaces the optimizer's hyper-parameters and state with
// sd's, as torch's load_state_dict: sd must have as many groups as the
// optimizer, each with as many parameters, and parameters are matched by
// position. Every group key this package knows ("lr", "momentum", "betas",
// "initial_lr", ...) overwrites the group's field. State tensors are copied
// and must have their parameter's number of elements. On error nothing is
// changed.
func (o *Optimizer) LoadStateDict(sd *StateDict) error {
	if len(sd.ParamGroups) != len(o.Groups) {
		return fmt.Errorf("optim: loaded state dict has %d parameter groups, the optimizer has %d", len(sd.ParamGroups), len(o.Groups))
	}
	byIndex := map[int]*nn.Tensor{}
	hypers := make([]Hyper, len(o.Groups))
	initial := make([]float64, len(o.Groups))
	for gi, pg := range sd.ParamGroups {
		g := o.Groups[gi]
		ids, err := intList(pg["params"])
		if err != nil {
			return fmt.Errorf("optim: param_groups.%d.params: %w", gi, err)
		}
		if len(ids) != len(g.Params) {
			return fmt.Errorf("optim: loaded state dict contains a parameter group (%d) that doesn't match the size of the optimizer's group (%d params, want %d)", gi, len(ids), len(g.Params))
		}
		for j, id := range ids {
			byIndex[id] = g.Params[j]
		}
		h, il := g.Hyper, g.InitialLR
		for k, v := range pg {
			if err := h.set(k, v, &il); err != nil {
				return fmt.Errorf("optim: param_groups.%d.%s: %w", gi, k, err)
			}
		}
		if err := validate(o.Algorithm, h); err != nil {
			return fmt.Errorf("optim: param_groups.%d: %w", gi, err)
		}
		hypers[gi], initial[gi] = h, il
	}
	state := map[*nn.Tensor]*paramState{}
	for id, m := range sd.State {
		p := byIndex[id]
		if p == nil {
			return fmt.Errorf("optim: state for parameter %d, which no group lists", id)
		}
		st, err := stateFrom(o.Algorithm, m, p.Numel())
		if err != nil {
			return fmt.Errorf("optim: state.%d: %w", id, err)
		}
		state[p] = st
	}
	for gi, g := range o.Groups {
		g.Hyper, g.InitialLR = hypers[gi], initial[gi]
	}
	o.state = state
	return nil
}

func stateFrom(alg Algorithm, m map[string]*nn.Tensor, n int) (*paramState, error) {
	st := &paramState{}
	vec := func(key string) ([]float32, error) {
		t, ok := m[key]
		if !ok || t == nil {
			return nil, nil
		}
		if t.Numel() != n {
			return nil, fmt.Errorf("%s has %d elements, the parameter %d", key, t.Numel(), n)
		}
		return append([]float32(nil), t.Data()...), nil
	}
	var err error
	if alg == SGD {
		_, st.hasMomSlot = m["momentum_buffer"]
		st.momentum, err = vec("momentum_buffer")
		return st, err
	}
	if st.expAvg, err = vec("exp_avg"); err != nil {
		return nil, err
	}
	if st.expAvgSq, err = vec("exp_avg_sq"); err != nil {
		return nil, err
	}
	if st.maxExpAvg, err = vec("max_exp_avg_sq"); err != nil {
		return nil, err
	}
	if (st.expAvg == nil) != (st.expAvgSq == nil) {
		return nil, fmt.Errorf("exp_avg and exp_avg_sq must both be present")
	}
	if t := m["step"]; t != nil {
		if t.Numel() != 1 {
			return nil, fmt.Errorf("step has %d elements, want 1", t.Numel())
		}
		st.step = float64(t.Data()[0])
	} else if st.expAvg != nil {
		return nil, fmt.Errorf("step is missing")
	}
	return st, nil
}

func (h *Hyper) set(key string, v any, initialLR *float64) error {
	f := func(dst *float64) error {
		x, err := toFloat(v)
		if err == nil {
			*dst = x
		}
		return err
	}
	b := func(dst *bool) error {
		x, ok := v.(bool)
		if !ok {
			return fmt.Errorf("got %T, want a bool", v)
		}
		*dst = x
		return nil
	}
	switch key {
	case "lr":
		return f(&h.LR)
	case "momentum":
		return f(&h.Momentum)
	case "dampening":
		return f(&h.Dampening)
	case "weight_decay":
		return f(&h.WeightDecay)
	case "eps":
		return f(&h.Eps)
	case "initial_lr":
		return f(initialLR)
	case "nesterov":
		return b(&h.Nesterov)
	case "maximize":
		return b(&h.Maximize)
	case "amsgrad":
		return b(&h.AMSGrad)
	case "betas":
		l, ok := v.([]float64)
		if !ok || len(l) != 2 {
			return fmt.Errorf("got %v, want two numbers", v)
		}
		h.Betas = [2]float64{l[0], l[1]}
	}
	return nil
}

func toFloat(v any) (float64, error) {
	switch x := v.(type) {
	case float64:
		return x, nil
	case int64:
		return float64(x), nil
	case int:
		return float64(x), nil
	case *big.Int:
		f, _ := new(big.Float).SetInt(x).Float64()
		return f, nil
	case string: // formats encodes non-finite floats as "nan", "inf", "-inf"
		if f, err := strconv.ParseFloat(x, 64); err == nil {
			return f, nil
		}
	}
	return 0, fmt.Errorf("got %v (%T), want a number", v, v)
}

func intList(v any) ([]int, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case []int:
		return x, nil
	}
	return nil, fmt.Errorf("got %T, want a list of indices", v)
}

// ReadStateDict reads an optimizer state dict that torch.save wrote, from a
// PyTorch file opened by package pickle. prefix is the path of the state
// dict inside the saved object: "" when the file holds the state dict itself
// (torch.save(opt.state_dict(), f)), "optimizer" for torch.save({"model": ...,
// "optimizer": opt.state_dict()}, f). Tensors are read into memory.
func ReadStateDict(f *pickle.File, prefix string) (*StateDict, error) {
	var ls []leaf
	for _, t := range f.Tensors {
		ls = append(ls, leaf{t.Name, t.Tensor})
	}
	for _, m := range f.Meta {
		ls = append(ls, leaf{m.Path, m.Value})
	}
	return parseLeaves(ls, prefix)
}

// FromCheckpoint reads an optimizer state dict from a checkpoint opened by
// package formats: a torch-saved file (whose non-tensor values formats keeps
// as JSON metadata by path), or a file written from [StateDict.Flatten].
func FromCheckpoint(c *formats.Checkpoint, prefix string) (*StateDict, error) {
	var ls []leaf
	for _, t := range c.Tensors {
		ls = append(ls, leaf{t.Name, t.Tensor})
	}
	for _, m := range c.Meta {
		var v any
		if err := json.Unmarshal([]byte(m.Value), &v); err != nil {
			v = m.Value // not JSON: a plain string, as safetensors metadata may be
		}
		ls = append(ls, leaf{m.Key, v})
	}
	return parseLeaves(ls, prefix)
}

type leaf struct {
	path  string
	value any // *tensor.Tensor or a scalar
}

// parseLeaves rebuilds a state dict from the flattened paths
// "state.<i>.<key>" and "param_groups.<g>.<key>[.<j>]".
func parseLeaves(ls []leaf, prefix string) (*StateDict, error) {
	if prefix != "" && !strings.HasSuffix(prefix, ".") {
		prefix += "."
	}
	sd := &StateDict{State: map[int]map[string]*nn.Tensor{}}
	type listKey struct {
		g   int
		key string
	}
	lists := map[listKey]map[int]any{}
	found := false
	for _, l := range ls {
		rest, ok := strings.CutPrefix(l.path, prefix)
		if !ok {
			continue
		}
		parts := strings.Split(rest, ".")
		switch {
		case len(parts) == 3 && parts[0] == "state":
			found = true
			id, err := strconv.Atoi(parts[1])
			if err != nil || id < 0 {
				return nil, fmt.Errorf("optim: %s: bad parameter index", l.path)
			}
			if sd.State[id] == nil {
				sd.State[id] = map[string]*nn.Tensor{}
			}
			switch v := l.value.(type) {
			case *tensor.Tensor:
				t, err := nn.FromStored(v)
				if err != nil {
					return nil, fmt.Errorf("optim: %s: %w", l.path, err)
				}
				sd.State[id][parts[2]] = t
			case nil:
				sd.State[id][parts[2]] = nil
			default: // a step saved as a Python number (torch < 1.12)
				x, err := toFloat(v)
				if err != nil {
					return nil, fmt.Errorf("optim: %s: %w", l.path, err)
				}
				sd.State[id][parts[2]] = nn.Scalar(float32(x))
			}
		case (len(parts) == 3 || len(parts) == 4) && parts[0] == "param_groups":
			found = true
			g, err := strconv.Atoi(parts[1])
			if err != nil || g < 0 || g > 1<<20 {
				return nil, fmt.Errorf("optim: %s: bad group index", l.path)
			}
			for len(sd.ParamGroups) <= g {
				sd.ParamGroups = append(sd.ParamGroups, map[string]any{})
			}
			if _, isT := l.value.(*tensor.Tensor); isT {
				return nil, fmt.Errorf("optim: %s: a tensor in a parameter group", l.path)
			}
			if len(parts) == 3 {
				sd.ParamGroups[g][parts[2]] = l.value
				continue
			}
			j, err := strconv.Atoi(parts[3])
			if err != nil || j < 0 {
				return nil, fmt.Errorf("optim: %s: bad list index", l.path)
			}
			k := listKey{g, parts[2]}
			if lists[k] == nil {
				lists[k] = map[int]any{}
			}
			lists[k][j] = l.value
		}
	}
	if !found {
		return nil, fmt.Errorf("optim: no optimizer state under %q (want state.<i>.<key> and param_groups.<g>.<key>)", strings.TrimSuffix(prefix, "."))
	}
	for k, m := range lists {
		vals := make([]any, len(m))
		for j, v := range m {
			if j >= len(m) {
				return nil, fmt.Errorf("optim: %sparam_groups.%d.%s: list indices are not 0..%d", prefix, k.g, k.key, len(m)-1)
			}
			vals[j] = v
		}
		if k.key == "params" {
			ids := make([]int, len(vals))
			for j, v := range vals {
				x, err := toFloat(v)
				if err != nil || x != math.Trunc(x) || x < 0 {
					return nil, fmt.Errorf("optim: %sparam_groups.%d.params.%d: not an index: %v", prefix, k.g, j, v)
				}
				ids[j] = int(x)
			}
			sd.ParamGroups[k.g][k.key] = ids
			continue
		}
		fs := make([]float64, len(vals))
		for j, v := range vals {
			x, err := toFloat(v)
			if err != nil {
				return nil, fmt.Errorf("optim: %sparam_groups.%d.%s.%d: %w", prefix, k.g, k.key, j, err)
			}
			fs[j] = x
		}
		sd.ParamGroups[k.g][k.key] = fs
	}
	return sd, nil
}

// Flatten returns sd as named stored tensors ("state.0.momentum_buffer",
// "state.1.step", ...) and JSON metadata ("param_groups.0.lr" = "0.1",
// "param_groups.0.params.2" = "2", "state.3.momentum_buffer" = "null"), the
// form package formats gives a torch-saved optimizer state, each name
// prefixed by prefix and a dot when prefix is not empty. formats.Save writes
// both to safetensors (metadata in __metadata__), so [FromCheckpoint] reads
// the file back; a PyTorch zip written by formats keeps the tensors only
// (use [WriteTorch] for a file torch's load_state_dict accepts).
func (sd *StateDict) Flatten(prefix string) (nn.StateDict, []formats.Meta) {
	if prefix != "" {
		prefix += "."
	}
	var ts nn.StateDict
	var meta []formats.Meta
	ids := make([]int, 0, len(sd.State))
	for id := range sd.State {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	for _, id := range ids {
		m := sd.State[id]
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(a, b int) bool {
			return stateKeyRank(keys[a]) < stateKeyRank(keys[b]) || stateKeyRank(keys[a]) == stateKeyRank(keys[b]) && keys[a] < keys[b]
		})
		for _, k := range keys {
			name := fmt.Sprintf("%sstate.%d.%s", prefix, id, k)
			if m[k] == nil {
				meta = append(meta, formats.Meta{Key: name, Value: "null"})
				continue
			}
			ts = append(ts, nn.Named{Name: name, Tensor: nn.ToStored(m[k])})
		}
	}
	for g, pg := range sd.ParamGroups {
		keys := make([]string, 0, len(pg))
		for k := range pg {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			name := fmt.Sprintf("%sparam_groups.%d.%s", prefix, g, k)
			switch v := pg[k].(type) {
			case []int:
				for j, x := range v {
					meta = append(meta, formats.Meta{Key: fmt.Sprintf("%s.%d", name, j), Value: strconv.Itoa(x)})
				}
			case []float64:
				for j, x := range v {
					meta = append(meta, formats.Meta{Key: fmt.Sprintf("%s.%d", name, j), Value: jsonValue(x)})
				}
			default:
				meta = append(meta, formats.Meta{Key: name, Value: jsonValue(v)})
			}
		}
	}
	return ts, meta
}

func stateKeyRank(k string) int {
	switch k {
	case "step":
		return 0
	case "exp_avg":
		return 1
	case "exp_avg_sq":
		return 2
	case "max_exp_avg_sq":
		return 3
	}
	return 4
}

func jsonValue(v any) string {
	if f, ok := v.(float64); ok {
		switch {
		case math.IsNaN(f):
			return `"nan"`
		case math.IsInf(f, 1):
			return `"inf"`
		case math.IsInf(f, -1):
			return `"-inf"`
		}
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "null"
	}
	return string(b)
}
