package optim

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// Scheduler changes the learning rates of an optimizer's groups once per
// Step, as torch.optim.lr_scheduler's schedulers. Call it after the
// optimizer's Step, once per epoch (or per iteration).
type Scheduler interface {
	// Step advances the schedule by one epoch and sets each group's LR.
	Step()
	// LastLR returns the learning rates the last Step set, one per group
	// (torch's get_last_lr()).
	LastLR() []float64
	// LastEpoch returns the number of Steps taken since construction
	// (torch's last_epoch).
	LastEpoch() int
}

// LRScheduler is one of torch's basic schedules (StepLR, MultiStepLR,
// CosineAnnealingLR, LinearLR). It reproduces torch 1.13's recursive
// ("chainable") formulas, which update each group's current LR from its
// previous value, so several schedulers on one optimizer compose as they do
// in torch, and an LR changed by hand carries on.
//
// Construction, as in torch, records each group's LR as InitialLR (unless a
// scheduler already did), takes the initial values as the base LRs, and
// performs step 0, which may change the LR at once (LinearLR multiplies it by
// its start factor).
type LRScheduler struct {
	// Name is torch's class name, such as "StepLR".
	Name string

	opt       *Optimizer
	baseLRs   []float64
	lastEpoch int
	stepCount int
	lastLR    []float64
	chain     func(s *LRScheduler) []float64 // torch's get_lr
	closed    func(s *LRScheduler) []float64 // torch's _get_closed_form_lr
	args      map[string]any                 // constructor arguments under torch's names
}

func newScheduler(name string, opt *Optimizer, args map[string]any, chain, closed func(*LRScheduler) []float64) *LRScheduler {
	s := &LRScheduler{Name: name, opt: opt, lastEpoch: -1, chain: chain, closed: closed, args: args}
	for _, g := range opt.Groups {
		if g.InitialLR == 0 {
			g.InitialLR = g.LR
		}
		s.baseLRs = append(s.baseLRs, g.InitialLR)
	}
	s.initialStep()
	return s
}

func (s *LRScheduler) initialStep() {
	s.stepCount = 0
	s.Step()
}

// Step advances the schedule by one epoch.
func (s *LRScheduler) Step() {
	s.stepCount++
	s.lastEpoch++
	s.set(s.chain(s))
}

// StepTo jumps to epoch using the closed-form schedule (torch's deprecated
// step(epoch)), which ignores changes made to the LRs by hand or by other
// schedulers.
func (s *LRScheduler) StepTo(epoch int) {
	s.stepCount++
	s.lastEpoch = epoch
	s.set(s.closed(s))
}

func (s *LRScheduler) set(lrs []float64) {
	for i, g := range s.opt.Groups {
		if i < len(lrs) {
			g.LR = lrs[i]
		}
	}
	s.lastLR = s.currentLRs()
}

func (s *LRScheduler) currentLRs() []float64 {
	lrs := make([]float64, len(s.opt.Groups))
	for i, g := range s.opt.Groups {
		lrs[i] = g.LR
	}
	return lrs
}

// LastLR returns the learning rates set by the last step, one per group.
func (s *LRScheduler) LastLR() []float64 { return append([]float64(nil), s.lastLR...) }

// LastEpoch returns torch's last_epoch: 0 after construction, then one more
// per Step.
func (s *LRScheduler) LastEpoch() int { return s.lastEpoch }

// BaseLRs returns the learning rates the schedule started from (torch's
// base_lrs).
func (s *LRScheduler) BaseLRs() []float64 { return append([]float64(nil), s.baseLRs...) }

func mapLR(s *LRScheduler, f func(lr, base float64) float64) []float64 {
	out := make([]float64, len(s.opt.Groups))
	for i, g := range s.opt.Groups {
		base := 0.0
		if i < len(s.baseLRs) {
			base = s.baseLRs[i]
		}
		out[i] = f(g.LR, base)
	}
	return out
}

// NewStepLR returns torch's StepLR: every stepSize epochs the LR is
// multiplied by gamma.
func NewStepLR(opt *Optimizer, stepSize int, gamma float64) (*LRScheduler, error) {
	if stepSize <= 0 {
		return nil, fmt.Errorf("optim: StepLR step size must be positive, got %d", stepSize)
	}
	return newScheduler("StepLR", opt, map[string]any{"step_size": int64(stepSize), "gamma": gamma},
		func(s *LRScheduler) []float64 {
			return mapLR(s, func(lr, _ float64) float64 {
				if s.lastEpoch == 0 || s.lastEpoch%stepSize != 0 {
					return lr
				}
				return lr * gamma
			})
		},
		func(s *LRScheduler) []float64 {
			return mapLR(s, func(_, base float64) float64 {
				return base * math.Pow(gamma, float64(floorDiv(s.lastEpoch, stepSize)))
			})
		}), nil
}

// NewMultiStepLR returns torch's MultiStepLR: at each milestone epoch the LR
// is multiplied by gamma (by gamma^k for a milestone listed k times).
func NewMultiStepLR(opt *Optimizer, milestones []int, gamma float64) (*LRScheduler, error) {
	count := map[int]int{}
	for _, m := range milestones {
		count[m]++
	}
	sorted := append([]int(nil), milestones...)
	sort.Ints(sorted)
	return newScheduler("MultiStepLR", opt, map[string]any{"milestones": sorted, "gamma": gamma},
		func(s *LRScheduler) []float64 {
			return mapLR(s, func(lr, _ float64) float64 {
				k := count[s.lastEpoch]
				if k == 0 {
					return lr
				}
				return lr * math.Pow(gamma, float64(k))
			})
		},
		func(s *LRScheduler) []float64 {
			n := sort.SearchInts(sorted, s.lastEpoch+1) // bisect_right
			return mapLR(s, func(_, base float64) float64 { return base * math.Pow(gamma, float64(n)) })
		}), nil
}

// NewCosineAnnealingLR returns torch's CosineAnnealingLR: the LR follows half
// a cosine from its base value down to etaMin over tMax epochs (and back up
// over the next tMax, as torch's recursion does).
func NewCosineAnnealingLR(opt *Optimizer, tMax int, etaMin float64) (*LRScheduler, error) {
	if tMax <= 0 {
		return nil, fmt.Errorf("optim: CosineAnnealingLR T_max must be positive, got %d", tMax)
	}
	T := float64(tMax)
	return newScheduler("CosineAnnealingLR", opt, map[string]any{"T_max": int64(tMax), "eta_min": etaMin},
		func(s *LRScheduler) []float64 {
			e := s.lastEpoch
			switch {
			case e == 0:
				return mapLR(s, func(lr, _ float64) float64 { return lr })
			case s.stepCount == 1 && e > 0:
				return mapLR(s, func(_, base float64) float64 {
					return etaMin + (base-etaMin)*(1+math.Cos(float64(e)*math.Pi/T))/2
				})
			case floorMod(e-1-tMax, 2*tMax) == 0:
				return mapLR(s, func(lr, base float64) float64 {
					return lr + (base-etaMin)*(1-math.Cos(math.Pi/T))/2
				})
			}
			return mapLR(s, func(lr, _ float64) float64 {
				return (1+math.Cos(math.Pi*float64(e)/T))/(1+math.Cos(math.Pi*float64(e-1)/T))*(lr-etaMin) + etaMin
			})
		},
		func(s *LRScheduler) []float64 {
			return mapLR(s, func(_, base float64) float64 {
				return etaMin + (base-etaMin)*(1+math.Cos(math.Pi*float64(s.lastEpoch)/T))/2
			})
		}), nil
}

// NewLinearLR returns torch's LinearLR, the usual linear warm-up: the LR is
// multiplied by startFactor at once and then grows linearly to endFactor
// times the base LR over totalIters epochs. torch's defaults are 1/3, 1.0
// and 5.
func NewLinearLR(opt *Optimizer, startFactor, endFactor float64, totalIters int) (*LRScheduler, error) {
	if startFactor > 1 || startFactor < 0 {
		return nil, errors.New("optim: LinearLR starting multiplicative factor expected to be between 0 and 1")
	}
	if endFactor > 1 || endFactor < 0 {
		return nil, errors.New("optim: LinearLR ending multiplicative factor expected to be between 0 and 1")
	}
	if totalIters <= 0 {
		return nil, fmt.Errorf("optim: LinearLR total_iters must be positive, got %d", totalIters)
	}
	n := float64(totalIters)
	args := map[string]any{"start_factor": startFactor, "end_factor": endFactor, "total_iters": int64(totalIters)}
	return newScheduler("LinearLR", opt, args,
		func(s *LRScheduler) []float64 {
			e := s.lastEpoch
			return mapLR(s, func(lr, _ float64) float64 {
				switch {
				case e == 0:
					return lr * startFactor
				case e > totalIters:
					return lr
				}
				return lr * (1 + (endFactor-startFactor)/(n*startFactor+float64(e-1)*(endFactor-startFactor)))
			})
		},
		func(s *LRScheduler) []float64 {
			e := float64(min(totalIters, s.lastEpoch))
			return mapLR(s, func(_, base float64) float64 {
				return base * (startFactor + (endFactor-startFactor)*e/n)
			})
		}), nil
}

// SequentialLR is torch's SequentialLR: it runs schedulers[0] until
// milestones[0], then schedulers[1] (restarted at its epoch 0) until
// milestones[1], and so on. Linear warm-up followed by cosine annealing is
//
//	warm, _ := optim.NewLinearLR(opt, 0.1, 1, 5)
//	cos, _ := optim.NewCosineAnnealingLR(opt, 95, 0)
//	sched, _ := optim.NewSequentialLR(opt, []*optim.LRScheduler{warm, cos}, []int{5})
type SequentialLR struct {
	opt        *Optimizer
	schedulers []*LRScheduler
	milestones []int
	lastEpoch  int
	lastLR     []float64
}

// NewSequentialLR chains schedulers that were all made on opt, switching at
// the given epochs (one milestone fewer than schedulers). As torch, it resets
// every group's LR to its InitialLR and replays the first scheduler's step 0.
func NewSequentialLR(opt *Optimizer, schedulers []*LRScheduler, milestones []int) (*SequentialLR, error) {
	if len(schedulers) == 0 {
		return nil, errors.New("optim: SequentialLR needs at least one scheduler")
	}
	for i, s := range schedulers {
		if s.opt != opt {
			return nil, fmt.Errorf("optim: SequentialLR scheduler %d belongs to another optimizer", i)
		}
	}
	if len(milestones) != len(schedulers)-1 {
		return nil, fmt.Errorf("optim: SequentialLR expects one milestone fewer than schedulers, got %d schedulers and %d milestones", len(schedulers), len(milestones))
	}
	q := &SequentialLR{opt: opt, schedulers: schedulers, milestones: append([]int(nil), milestones...)}
	for _, g := range opt.Groups {
		g.LR = g.InitialLR
	}
	for _, s := range schedulers {
		s.lastEpoch--
	}
	schedulers[0].initialStep()
	q.lastLR = schedulers[0].LastLR()
	return q, nil
}

// Step advances the active scheduler, switching at a milestone.
func (q *SequentialLR) Step() {
	q.lastEpoch++
	idx := sort.SearchInts(q.milestones, q.lastEpoch+1) // bisect_right
	s := q.schedulers[idx]
	if idx > 0 && q.milestones[idx-1] == q.lastEpoch {
		s.StepTo(0)
	} else {
		s.Step()
	}
	q.lastLR = s.LastLR()
}

// LastLR returns the learning rates set by the last step, one per group.
func (q *SequentialLR) LastLR() []float64 { return append([]float64(nil), q.lastLR...) }

// LastEpoch returns the number of Steps since construction.
func (q *SequentialLR) LastEpoch() int { return q.lastEpoch }

func floorDiv(a, b int) int {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func floorMod(a, b int) int { return a - floorDiv(a, b)*b }
