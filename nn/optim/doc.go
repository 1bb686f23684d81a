// Package optim trains the parameters of package nn: torch.optim's SGD, Adam
// and AdamW with parameter groups, the learning-rate schedulers of
// torch.optim.lr_scheduler, and optimizer state dicts in torch's layout, so
// that training started in PyTorch continues here and the other way round.
//
// # Optimizers
//
// An [Optimizer] holds [Group]s of parameters (*nn.Tensor), each with its own
// [Hyper]-parameters; [New] (or [NewSGD], [NewAdam], [NewAdamW]) makes the
// first group from torch's defaults changed by [Option]s, and
// [Optimizer.AddParamGroup] adds more:
//
//	opt, err := optim.NewSGD(head.Parameters(), optim.LR(0.1), optim.Momentum(0.9))
//	_, err = opt.AddParamGroup(backbone.Parameters(), optim.LR(0.01))
//	for ... {
//		opt.ZeroGrad()
//		loss := lossFn.Forward(model.Forward(x), y)
//		loss.Backward()
//		opt.Step()
//	}
//
// [Optimizer.Step] updates only parameters that require grad and have a
// gradient, so a frozen backbone (nn's RequiresGrad(false)) costs nothing and
// keeps its values. The update rules are torch 1.13's single-tensor
// implementations, computed in float32 operation by operation; the parity
// tests hold them to torch within 2e-6 relative after a dozen steps.
//
// # Schedulers
//
// [NewStepLR], [NewMultiStepLR], [NewCosineAnnealingLR] and [NewLinearLR]
// return an [LRScheduler]; [NewSequentialLR] chains them (linear warm-up, then
// cosine). They follow torch's recursive formulas and its construction-time
// step 0, so the learning rates match torch's get_last_lr() epoch by epoch.
// As in torch, a scheduler's position has its own state dict
// ([LRScheduler.StateDict], [SequentialLR.LoadStateDict]; [SchedulerState]
// reads one that torch saved), while the "initial_lr" it records is part of
// the optimizer's.
//
// # State dicts
//
// [Optimizer.StateDict] and [Optimizer.LoadStateDict] use torch's layout
// ([StateDict]: "state" by parameter index, "param_groups" with "params" as
// indices). Both directions of resuming work:
//
//   - from torch: [ReadStateDict] reads what torch.save(opt.state_dict())
//     wrote, through package pickle ([FromCheckpoint] through package
//     formats);
//   - to torch: [WriteTorch] writes the nested dict as torch.save does, and
//     torch's optimizer.load_state_dict(torch.load(f)) continues from it.
//
// [StateDict.Flatten] gives the flattened form package formats uses for a
// torch-saved optimizer (tensors "state.0.momentum_buffer", JSON metadata
// "param_groups.0.lr"), for safetensors files or a checkpoint that holds the
// model and the optimizer side by side.
//
// # Not done here
//
// Other optimizers (RMSprop, Adagrad, ...), closures, sparse gradients,
// torch's foreach/fused kernels (their results equal the single-tensor ones
// up to rounding), capturable/differentiable modes, writing scheduler states
// as torch pickles, and reading MultiStepLR's (its milestones are a
// collections.Counter, which package pickle's allow-list refuses).
package optim
