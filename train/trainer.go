package train

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/ckptkit/ckpt/data"
	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/optim"
)

// Batch is a batch of inputs (images [N, 3, S, S] or cached features
// [N, D]) with their labels.
type Batch struct {
	X      *nn.Tensor
	Labels []int
}

// Source yields the batches of an epoch, as [data.Loader.Epoch] does: the
// channel is closed at the end, and the function returns the first error.
type Source interface {
	Epoch(ctx context.Context, epoch int) (<-chan Batch, func() error)
	NumBatches() int
}

// Images is a Source of decoded, preprocessed images.
type Images struct{ L *data.Loader }

// Epoch streams the loader's batches as [N, 3, S, S] tensors.
func (s Images) Epoch(ctx context.Context, epoch int) (<-chan Batch, func() error) {
	in, errf := s.L.Epoch(ctx, epoch)
	out := make(chan Batch)
	go func() {
		defer close(out)
		for b := range in {
			out <- Batch{X: nn.New(b.X, b.Len(), 3, b.Size, b.Size), Labels: b.Labels}
		}
	}()
	return out, errf
}

// NumBatches returns the loader's batches per epoch.
func (s Images) NumBatches() int { return s.L.NumBatches() }

// EpochStats is one row of summary.csv.
type EpochStats struct {
	Epoch     int     `json:"epoch"`
	LR        float64 `json:"lr"`
	TrainLoss float64 `json:"train_loss"`
	TrainTop1 float64 `json:"train_top1"`
	ValLoss   float64 `json:"val_loss"`
	ValTop1   float64 `json:"val_top1"`
	ValTop5   float64 `json:"val_top5"`
	Seconds   float64 `json:"seconds"`
	// DataWait is the time the training loop spent waiting for the next
	// batch from Train (decoding and preprocessing that prefetch did not
	// hide), in seconds: near 0 when the loader keeps up with the model.
	DataWait float64 `json:"data_wait_seconds"`
	// TrainSeconds is the time of the training loop alone (batches, not
	// validation), which DataWait is part of.
	TrainSeconds float64 `json:"train_seconds"`
	// Images is the number of training images seen in the epoch.
	Images int `json:"-"`
	// Val holds the full validation results (nil without a validation set).
	Val *Metrics `json:"-"`
}

// Callback observes training. OnBatch is called after every optimizer step
// with the batch's loss; OnEpoch after every epoch's validation, and may
// return [ErrStop] to end training early (other errors abort it).
type Callback interface {
	OnBatch(t *Trainer, epoch, batch int, loss float64)
	OnEpoch(t *Trainer, s *EpochStats) error
}

// ErrStop, returned by a callback's OnEpoch, ends training after the epoch.
var ErrStop = errors.New("train: stop")

// Trainer runs the training loop: for every epoch, every batch of Train goes
// through Net, the cross-entropy Loss, backward and an optimizer step; then
// Val is evaluated, Sched steps once, and the callbacks run.
//
// Evaluation runs inside nn.NoGrad, which covers the calling goroutine
// only, so Trainers in other goroutines keep training meanwhile.
type Trainer struct {
	Net   nn.Module
	Opt   *optim.Optimizer
	Sched optim.Scheduler
	Loss  *nn.CrossEntropyLoss
	// Train and Val provide the batches; Val may be nil.
	Train, Val Source
	Classes    []string
	// Epochs is the epoch count; training starts at StartEpoch (the number
	// of epochs already done, when resuming).
	Epochs, StartEpoch int
	// Seed reseeds nn's generator (dropout, stochastic depth) at the start
	// of every epoch with Seed and the epoch, so that a resumed run draws
	// what the uninterrupted one drew.
	Seed      uint64
	Callbacks []Callback
	// History holds the stats of the epochs run.
	History []EpochStats
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Interrupted is Run's error when ctx ended training between two batches.
type Interrupted struct {
	Epoch, Batch int
	Err          error
}

func (e *Interrupted) Error() string {
	return fmt.Sprintf("train: stopped in epoch %d after batch %d: %v", e.Epoch+1, e.Batch, e.Err)
}

func (e *Interrupted) Unwrap() error { return e.Err }

// Run trains until Epochs, a callback's ErrStop, or ctx's end (checked
// before every batch and during validation; Run then returns an
// *Interrupted, and the interrupted epoch counts as not run: the schedule
// steps and the callbacks see an epoch only once it is validated). The optimizer has
// taken every step of the batches it reported.
func (t *Trainer) Run(ctx context.Context) error {
	now := t.Now
	if now == nil {
		now = time.Now
	}
	// The steps' activations and gradients, reused from batch to batch,
	// and given back when training ends.
	var mem nn.TrainArena
	defer mem.Free()
	for epoch := t.StartEpoch; epoch < t.Epochs; epoch++ {
		start := now()
		nn.ManualSeed(t.Seed ^ uint64(epoch+1)*0x9e3779b97f4a7c15)
		lr := t.Opt.Groups[len(t.Opt.Groups)-1].LR
		acc := NewAccumulator(t.Classes)
		t.Net.Train()
		ectx, cancel := context.WithCancel(context.Background())
		ch, errf := t.Train.Epoch(ectx, epoch)
		bi := 0
		var stopped error
		var wait time.Duration
		for {
			asked := now()
			b, ok := <-ch
			if !ok {
				break
			}
			if stopped == nil {
				wait += now().Sub(asked)
			}
			if stopped == nil && ctx.Err() != nil {
				stopped = ctx.Err()
				cancel()
			}
			if stopped != nil {
				continue // drain after cancelling
			}
			t.Opt.ZeroGrad()
			var lossv float64
			mem.Step(b.X, func(x *nn.Tensor) {
				out := t.Net.Forward(x)
				loss := t.Loss.Forward(out, b.Labels)
				// The logits are arena memory that Backward lends to
				// gradients: read them first.
				acc.Add(out.Data(), b.Labels)
				lossv = float64(loss.Item())
				loss.Backward()
			})
			t.Opt.Step()
			bi++
			for _, c := range t.Callbacks {
				c.OnBatch(t, epoch, bi, lossv)
			}
		}
		err := errf()
		cancel()
		if err != nil && stopped == nil {
			return err
		}
		if stopped != nil {
			return &Interrupted{Epoch: epoch, Batch: bi, Err: stopped}
		}
		s := EpochStats{Epoch: epoch + 1, LR: lr, TrainLoss: acc.Loss(), TrainTop1: acc.Top1(), Images: acc.n,
			DataWait: wait.Seconds(), TrainSeconds: now().Sub(start).Seconds()}
		if t.Val != nil {
			m, err := Evaluate(ctx, t.Net, t.Val, t.Classes)
			if err != nil && ctx.Err() != nil {
				// Stopped while validating: the epoch is not complete
				// (no schedule step, no callbacks), as if stopped after its
				// last batch.
				return &Interrupted{Epoch: epoch, Batch: bi, Err: ctx.Err()}
			}
			if err != nil {
				return err
			}
			s.Val, s.ValLoss, s.ValTop1, s.ValTop5 = m, m.Loss, m.Top1, m.Top5
		}
		if t.Sched != nil {
			t.Sched.Step()
		}
		s.Seconds = now().Sub(start).Seconds()
		t.History = append(t.History, s)
		stop := false
		for _, c := range t.Callbacks {
			if err := c.OnEpoch(t, &s); errors.Is(err, ErrStop) {
				stop = true
			} else if err != nil {
				return err
			}
		}
		if stop {
			return nil
		}
	}
	return nil
}

// Evaluate runs net in eval mode without gradients over every batch of src
// and returns the metrics; net is put back in training mode if it was in it.
// It runs through nn.Infer, inside nn.NoGrad, which covers the calling
// goroutine only, so training in other goroutines keeps its gradients.
func Evaluate(ctx context.Context, net nn.Module, src Source, classes []string) (*Metrics, error) {
	wasTraining := net.Training()
	net.Eval()
	defer func() {
		if wasTraining {
			net.Train()
		}
	}()
	acc := NewAccumulator(classes)
	ch, errf := src.Epoch(ctx, 0)
	for b := range ch {
		y := nn.Infer(net, b.X)
		acc.Add(y.Data(), b.Labels)
	}
	if err := errf(); err != nil {
		return nil, err
	}
	return acc.Metrics(), nil
}

// EarlyStopping stops training when the validation loss has not improved
// for Patience epochs, keeping a copy of Model's state at the best epoch;
// Restore loads it back.
type EarlyStopping struct {
	Patience int
	Model    nn.Module
	// Best is the best validation loss and BestEpoch its epoch (1-based).
	Best      float64
	BestEpoch int
	best      nn.StateDict
}

// OnBatch does nothing.
func (e *EarlyStopping) OnBatch(*Trainer, int, int, float64) {}

// OnEpoch records an improvement or returns ErrStop after Patience epochs
// without one.
func (e *EarlyStopping) OnEpoch(_ *Trainer, s *EpochStats) error {
	if s.Val == nil {
		return nil
	}
	if e.BestEpoch == 0 || s.ValLoss < e.Best {
		e.Best, e.BestEpoch = s.ValLoss, s.Epoch
		e.best = e.Model.StateDict()
		return nil
	}
	if e.Patience > 0 && s.Epoch-e.BestEpoch >= e.Patience {
		return ErrStop
	}
	return nil
}

// Restore loads the best epoch's state into Model (no-op before any).
func (e *EarlyStopping) Restore() error {
	if e.best == nil {
		return nil
	}
	_, err := e.Model.LoadStateDict(e.best, true)
	return err
}

// Features is a Source of cached feature vectors: each epoch draws a
// shuffled order from Seed and the epoch and, with several views per image,
// one view per image from the same generator.
type Features struct {
	// Views[v][i] is image i's feature vector in view v.
	Views     [][][]float32
	Labels    []int
	BatchSize int
	Shuffle   bool
	Seed      uint64
}

// NumBatches returns the batches per epoch.
func (f *Features) NumBatches() int { return (len(f.Labels) + f.BatchSize - 1) / f.BatchSize }

// Epoch streams the batches of epoch.
func (f *Features) Epoch(ctx context.Context, epoch int) (<-chan Batch, func() error) {
	n := len(f.Labels)
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	r := rand.New(rand.NewPCG(f.Seed, uint64(epoch)+0x5eed))
	if f.Shuffle {
		r.Shuffle(n, func(i, j int) { order[i], order[j] = order[j], order[i] })
	}
	out := make(chan Batch, 1)
	var err error
	go func() {
		defer close(out)
		d := 0
		if n > 0 {
			d = len(f.Views[0][0])
		}
		for lo := 0; lo < n; lo += f.BatchSize {
			hi := min(lo+f.BatchSize, n)
			x := make([]float32, 0, (hi-lo)*d)
			labels := make([]int, 0, hi-lo)
			for _, i := range order[lo:hi] {
				v := 0
				if len(f.Views) > 1 {
					v = r.IntN(len(f.Views))
				}
				x = append(x, f.Views[v][i]...)
				labels = append(labels, f.Labels[i])
			}
			select {
			case out <- Batch{X: nn.New(x, hi-lo, d), Labels: labels}:
			case <-ctx.Done():
				err = ctx.Err()
				return
			}
		}
	}()
	return out, func() error { return err }
}
