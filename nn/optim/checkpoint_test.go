package optim_test

import (
	"math"
	"strings"
	"testing"

	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/optim"
	"github.com/ckptkit/ckpt/pickle"
)

// prefixed returns the tensors of f under prefix, with the prefix removed.
func prefixed(f *pickle.File, prefix string) nn.StateDict {
	var sd nn.StateDict
	for _, t := range f.Tensors {
		if name, ok := strings.CutPrefix(t.Name, prefix); ok {
			sd = append(sd, nn.Named{Name: name, Tensor: t.Tensor})
		}
	}
	return sd
}

// TestResumeTrainingCheckpoint resumes a whole training checkpoint that
// torch saved, {"model": ..., "optimizer": ..., "epoch": 300}
// (testdata/transfer/checkpoint.pt, made by
// testdata/gen/transfer_fixture.py), takes the training step torch took next
// (train mode: batch-statistics BatchNorm, cross-entropy, backward through
// every layer, Adam), and compares the loss and every tensor of the model's
// state dict with torch's (testdata/transfer/resume_step.pt).
//
// Tolerances: the forward and backward passes agree with torch to about 1e-6
// relative (nn's parity tests); Adam divides the gradient's running mean by
// its running RMS, so a 1e-6 change of a gradient moves an update of size
// lr=0.01 by much less than 1e-7. 1e-5 relative plus 1e-6 absolute bounds
// that with room; a missed parameter moves by up to lr, 1e-2.
func TestResumeTrainingCheckpoint(t *testing.T) {
	f, err := pickle.Open("../../testdata/transfer/checkpoint.pt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	model := NewSmallCNN(10)
	if _, err := model.LoadStateDict(prefixed(f, "model."), true); err != nil {
		t.Fatal(err)
	}
	sd, err := optim.ReadStateDict(f, "optimizer")
	if err != nil {
		t.Fatal(err)
	}
	opt, err := optim.NewAdam(model.Parameters())
	if err != nil {
		t.Fatal(err)
	}
	if err := opt.LoadStateDict(sd); err != nil {
		t.Fatal(err)
	}
	if got := opt.Groups[0].LR; got != 0.01 {
		t.Errorf("lr: got %v, want torch's 0.01", got)
	}
	if got := len(sd.State); got != len(model.Parameters()) {
		t.Errorf("got state for %d parameters, want %d", got, len(model.Parameters()))
	}
	epoch := -1.0
	for _, m := range f.Meta {
		if m.Path == "epoch" {
			if v, ok := m.Value.(int64); ok {
				epoch = float64(v)
			}
		}
	}
	if got := sd.State[0]["step"].Item(); float64(got) != epoch {
		t.Errorf("adam step: got %v, want the epoch count %v", got, epoch)
	}

	next, err := pickle.Open("../../testdata/transfer/resume_step.pt")
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	x, err := nn.FromStored(next.Tensors[0].Tensor)
	if err != nil || next.Tensors[0].Name != "input" {
		t.Fatalf("input: %v %s", err, next.Tensors[0].Name)
	}
	yt, err := nn.FromStored(next.Tensors[1].Tensor)
	if err != nil || next.Tensors[1].Name != "target" {
		t.Fatalf("target: %v %s", err, next.Tensors[1].Name)
	}
	y := make([]int, yt.Numel())
	for i, v := range yt.Data() {
		y[i] = int(v)
	}
	wantLoss, _ := nn.FromStored(next.Tensors[2].Tensor)

	model.Train()
	opt.ZeroGrad()
	loss := nn.NewCrossEntropyLoss().Forward(model.Forward(x), y)
	loss.Backward()
	opt.Step()
	if got, want := float64(loss.Item()), float64(wantLoss.Item()); math.Abs(got-want) > 1e-5*math.Abs(want)+1e-6 {
		t.Errorf("loss: got %v, want %v", got, want)
	}
	want := prefixed(next, "model.")
	got := model.StateDict()
	if len(got) != len(want) {
		t.Fatalf("got %d state_dict entries, want %d", len(got), len(want))
	}
	for _, w := range want {
		wt, err := nn.FromStored(w.Tensor)
		if err != nil {
			t.Fatal(err)
		}
		gs := got.Tensor(w.Name)
		if gs == nil {
			t.Errorf("%s: missing", w.Name)
			continue
		}
		gt, err := nn.FromStored(gs)
		if err != nil {
			t.Fatal(err)
		}
		if !nn.AllClose(gt, wt, 1e-5, 1e-6) {
			t.Errorf("%s after the step: got %v, want %v", w.Name, gt.Data(), wt.Data())
		}
	}
}
