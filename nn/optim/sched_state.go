package optim

import (
	"fmt"
	"math/big"
	"strings"

	"github.com/ckptkit/ckpt/pickle"
)

// StateDict returns the schedule's position in torch's layout
// (scheduler.state_dict()): its arguments under torch's names ("step_size",
// "gamma", "T_max", "eta_min", "start_factor", "end_factor", "total_iters",
// "milestones"), "base_lrs", "last_epoch", "_step_count", "_last_lr",
// "verbose" and "_get_lr_called_within_step".
func (s *LRScheduler) StateDict() map[string]any {
	st := map[string]any{}
	for k, v := range s.args {
		st[k] = v
	}
	st["base_lrs"] = append([]float64(nil), s.baseLRs...)
	st["last_epoch"] = int64(s.lastEpoch)
	st["_step_count"] = int64(s.stepCount)
	st["_last_lr"] = append([]float64(nil), s.lastLR...)
	st["verbose"] = false
	st["_get_lr_called_within_step"] = false
	return st
}

// LoadStateDict restores the schedule's position from torch's
// scheduler.state_dict() (see [SchedulerState] for reading one that torch
// saved): "last_epoch", "_step_count", "base_lrs" and "_last_lr". The
// schedule's arguments are the constructor's; a state whose arguments differ
// is refused. Load the optimizer's state too: the recursive formulas continue
// from each group's current LR.
func (s *LRScheduler) LoadStateDict(st map[string]any) error {
	for k, want := range s.args {
		got, ok := st[k]
		if !ok {
			continue
		}
		if !sameArg(got, want) {
			return fmt.Errorf("optim: %s state has %s=%v, the scheduler %v", s.Name, k, got, want)
		}
	}
	le, err := intOf(st, "last_epoch")
	if err != nil {
		return err
	}
	sc, err := intOf(st, "_step_count")
	if err != nil {
		return err
	}
	base, err := floatsOf(st, "base_lrs", len(s.opt.Groups))
	if err != nil {
		return err
	}
	last, err := floatsOf(st, "_last_lr", len(s.opt.Groups))
	if err != nil {
		return err
	}
	s.lastEpoch, s.stepCount, s.baseLRs, s.lastLR = le, sc, base, last
	return nil
}

// StateDict returns the chain's position in torch's layout: "_milestones",
// "last_epoch", "_last_lr" and "_schedulers", the state of each scheduler.
func (q *SequentialLR) StateDict() map[string]any {
	subs := make([]any, len(q.schedulers))
	for i, s := range q.schedulers {
		subs[i] = s.StateDict()
	}
	ms := make([]any, len(q.milestones))
	for i, m := range q.milestones {
		ms[i] = int64(m)
	}
	return map[string]any{
		"_milestones": ms,
		"last_epoch":  int64(q.lastEpoch),
		"_last_lr":    append([]float64(nil), q.lastLR...),
		"_schedulers": subs,
	}
}

// LoadStateDict restores the chain's position and each scheduler's from
// torch's SequentialLR.state_dict().
func (q *SequentialLR) LoadStateDict(st map[string]any) error {
	le, err := intOf(st, "last_epoch")
	if err != nil {
		return err
	}
	last, err := floatsOf(st, "_last_lr", len(q.opt.Groups))
	if err != nil {
		return err
	}
	subs, ok := st["_schedulers"].([]any)
	if !ok || len(subs) != len(q.schedulers) {
		return fmt.Errorf("optim: SequentialLR state has %v for _schedulers, want %d scheduler states", st["_schedulers"], len(q.schedulers))
	}
	if ms, ok := st["_milestones"]; ok {
		l, ok := ms.([]any)
		if !ok || len(l) != len(q.milestones) {
			return fmt.Errorf("optim: SequentialLR state has milestones %v, the scheduler %v", ms, q.milestones)
		}
		for i, m := range l {
			if v, err := toFloat(m); err != nil || int(v) != q.milestones[i] {
				return fmt.Errorf("optim: SequentialLR state has milestones %v, the scheduler %v", ms, q.milestones)
			}
		}
	}
	// Check every child before changing any.
	saved := make([]LRScheduler, len(q.schedulers))
	for i, s := range q.schedulers {
		saved[i] = *s
	}
	for i, s := range q.schedulers {
		m, ok := subs[i].(map[string]any)
		if !ok {
			err = fmt.Errorf("optim: SequentialLR state: scheduler %d: got %T, want a dict", i, subs[i])
		} else {
			err = s.LoadStateDict(m)
		}
		if err != nil {
			for j := range q.schedulers {
				*q.schedulers[j] = saved[j]
			}
			return err
		}
	}
	q.lastEpoch, q.lastLR = le, last
	return nil
}

// SchedulerState returns the scheduler state dict stored in a file that
// torch.save wrote, at prefix in the saved object ("" when the file holds
// the state dict itself, "scheduler" for torch.save({"scheduler": ...})).
// Dicts become map[string]any, lists and tuples []any; numbers, strings,
// bools and None keep their pickle types (int64, float64, ...).
//
// MultiStepLR's state holds its milestones as a collections.Counter, which
// package pickle's allow-list refuses (as torch's weights_only loader does):
// such files do not open.
func SchedulerState(f *pickle.File, prefix string) (map[string]any, error) {
	v := f.Root
	if prefix != "" {
		for _, k := range strings.Split(prefix, ".") {
			d, ok := v.(*pickle.Dict)
			if !ok {
				return nil, fmt.Errorf("optim: no scheduler state at %q: not a dict", prefix)
			}
			if v, ok = d.Get(k); !ok {
				return nil, fmt.Errorf("optim: no scheduler state at %q: no key %q", prefix, k)
			}
		}
	}
	d, ok := v.(*pickle.Dict)
	if !ok {
		return nil, fmt.Errorf("optim: scheduler state at %q is a %T, not a dict", prefix, v)
	}
	m, err := plain(d, 0)
	if err != nil {
		return nil, err
	}
	return m.(map[string]any), nil
}

// plain converts a decoded pickle value into Go maps and slices.
func plain(v any, depth int) (any, error) {
	if depth > 64 {
		return nil, fmt.Errorf("optim: scheduler state nested too deeply")
	}
	switch x := v.(type) {
	case *pickle.Dict:
		m := make(map[string]any, x.Len())
		for i, k := range x.Keys {
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("optim: scheduler state key %v is not a string", k)
			}
			pv, err := plain(x.Values[i], depth+1)
			if err != nil {
				return nil, err
			}
			m[ks] = pv
		}
		return m, nil
	case []any:
		return plainList(x, depth)
	case pickle.Tuple:
		return plainList(x, depth)
	}
	return v, nil
}

func plainList(x []any, depth int) (any, error) {
	out := make([]any, len(x))
	for i, e := range x {
		pv, err := plain(e, depth+1)
		if err != nil {
			return nil, err
		}
		out[i] = pv
	}
	return out, nil
}

func intOf(st map[string]any, key string) (int, error) {
	v, ok := st[key]
	if !ok {
		return 0, fmt.Errorf("optim: scheduler state has no %s", key)
	}
	switch x := v.(type) {
	case int64:
		return int(x), nil
	case int:
		return x, nil
	case *big.Int:
		if x.IsInt64() {
			return int(x.Int64()), nil
		}
	case float64:
		if x == float64(int(x)) {
			return int(x), nil
		}
	}
	return 0, fmt.Errorf("optim: scheduler state %s: got %v (%T), want an integer", key, v, v)
}

func floatsOf(st map[string]any, key string, n int) ([]float64, error) {
	var vals []any
	switch x := st[key].(type) {
	case []any:
		vals = x
	case []float64:
		out := append([]float64(nil), x...)
		if len(out) != n {
			return nil, fmt.Errorf("optim: scheduler state %s has %d values for %d parameter groups", key, len(out), n)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("optim: scheduler state %s: got %v (%T), want a list of numbers", key, st[key], st[key])
	}
	if len(vals) != n {
		return nil, fmt.Errorf("optim: scheduler state %s has %d values for %d parameter groups", key, len(vals), n)
	}
	out := make([]float64, n)
	for i, v := range vals {
		f, err := toFloat(v)
		if err != nil {
			return nil, fmt.Errorf("optim: scheduler state %s.%d: %w", key, i, err)
		}
		out[i] = f
	}
	return out, nil
}

func sameArg(got, want any) bool {
	if w, ok := want.([]int); ok {
		var l []any
		switch g := got.(type) {
		case []any:
			l = g
		case []int:
			if len(g) != len(w) {
				return false
			}
			for i := range g {
				if g[i] != w[i] {
					return false
				}
			}
			return true
		default:
			return false
		}
		if len(l) != len(w) {
			return false
		}
		for i := range l {
			f, err := toFloat(l[i])
			if err != nil || f != float64(w[i]) {
				return false
			}
		}
		return true
	}
	g, err1 := toFloat(got)
	wf, err2 := toFloat(want)
	return err1 == nil && err2 == nil && g == wf
}
