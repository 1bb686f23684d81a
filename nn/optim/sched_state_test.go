package optim

import (
	"math"
	"path/filepath"
	"sort"
	"testing"

	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/pickle"
)

type stateful interface {
	Scheduler
	StateDict() map[string]any
	LoadStateDict(map[string]any) error
}

// TestResumeScheduler resumes schedules from
// torch.save({"optimizer": ..., "scheduler": sched.state_dict()}) files
// (testdata/gen/optim_cases.py, sched_*.pt) and checks the learning rates of
// the following epochs against torch's get_last_lr(); the state Go gives
// back has torch's keys.
func TestResumeScheduler(t *testing.T) {
	cases := loadCases(t, "../../testdata/optim/sched_resume.json")
	for i := range cases {
		c := &cases[i]
		t.Run(c.Name, func(t *testing.T) { runSchedResume(t, "../../testdata/optim", c) })
	}
}

func runSchedResume(t *testing.T, dir string, c *fixCase) {
	f, err := pickle.Open(filepath.Join(dir, c.File))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	osd, err := ReadStateDict(f, "optimizer")
	if err != nil {
		t.Fatal(err)
	}
	ssd, err := SchedulerState(f, "scheduler")
	if err != nil {
		t.Fatal(err)
	}
	ps := []*nn.Tensor{nn.Zeros(3, 4).SetRequiresGrad(true), nn.Zeros(3).SetRequiresGrad(true), nn.Zeros(5).SetRequiresGrad(true)}
	o, err := NewSGD(ps[:2], LR(0.1), Momentum(0.9))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.AddParamGroup(ps[2:], LR(0.03)); err != nil {
		t.Fatal(err)
	}
	sch := buildSched(t, o, c.Sched).(stateful)
	if err := o.LoadStateDict(osd); err != nil {
		t.Fatal(err)
	}
	if err := sch.LoadStateDict(ssd); err != nil {
		t.Fatal(err)
	}
	if got, want := keys(sch.StateDict()), keys(ssd); !equalStrings(got, want) {
		t.Errorf("state keys: got %v, want torch's %v", got, want)
	}
	for k, want := range c.LRs {
		o.Step()
		sch.Step()
		for g, lr := range sch.LastLR() {
			if math.Abs(lr-want[g]) > lrTol*math.Abs(want[g]) {
				t.Errorf("epoch %d after resuming, group %d: got lr %v, want %v", k+1, g, lr, want[g])
			}
		}
	}
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestSchedulerStateRoundTrip: a state taken in Go and loaded into a fresh
// scheduler continues the same schedule; a state of other arguments is
// refused.
func TestSchedulerStateRoundTrip(t *testing.T) {
	mk := func() (*Optimizer, *SequentialLR) {
		o, err := NewSGD([]*nn.Tensor{nn.Zeros(1).SetRequiresGrad(true)}, LR(0.1))
		if err != nil {
			t.Fatal(err)
		}
		w, _ := NewLinearLR(o, 0.1, 1, 3)
		c, _ := NewCosineAnnealingLR(o, 5, 0)
		q, err := NewSequentialLR(o, []*LRScheduler{w, c}, []int{3})
		if err != nil {
			t.Fatal(err)
		}
		return o, q
	}
	o1, q1 := mk()
	for i := 0; i < 5; i++ {
		o1.Step()
		q1.Step()
	}
	st, osd := q1.StateDict(), o1.StateDict()
	o2, q2 := mk()
	if err := o2.LoadStateDict(osd); err != nil {
		t.Fatal(err)
	}
	if err := q2.LoadStateDict(st); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		q1.Step()
		q2.Step()
		if a, b := q1.LastLR()[0], q2.LastLR()[0]; a != b {
			t.Errorf("step %d: got %v, want %v", i, b, a)
		}
	}
	o3, err := NewSGD([]*nn.Tensor{nn.Zeros(1).SetRequiresGrad(true)}, LR(0.1))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := NewStepLR(o3, 3, 0.5)
	bad := s.StateDict()
	bad["step_size"] = int64(4)
	if err := s.LoadStateDict(bad); err == nil {
		t.Errorf("other step_size: got nil error, want one")
	}
	delete(bad, "step_size")
	bad["_last_lr"] = []any{0.1, 0.2}
	if err := s.LoadStateDict(bad); err == nil {
		t.Errorf("two LRs for one group: got nil error, want one")
	}
}
