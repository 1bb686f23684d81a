package nn

import (
	"fmt"
	"math"
)

// FoldBatchNorm returns a new Conv2d that computes bn(conv(x)) with bn in
// eval mode: each output channel's weights are scaled by
// weight/sqrt(running_var+eps) and the bias becomes
// (bias-running_mean)·scale + bn.bias. The inputs are not modified.
//
// It is an inference optimisation (one pass over the output instead of two);
// the fused module's state_dict and printed form are those of a plain
// Conv2d, and its outputs differ from the unfused pair by float32 rounding.
// It returns an error if bn has no running statistics or does not match
// conv's output channels.
func FoldBatchNorm(conv *Conv2d, bn *BatchNorm2d) (*Conv2d, error) {
	if bn.RunningMean == nil || bn.RunningVar == nil {
		return nil, fmt.Errorf("nn: FoldBatchNorm: batch norm has no running statistics")
	}
	if bn.NumFeatures != conv.OutChannels {
		return nil, fmt.Errorf("nn: FoldBatchNorm: batch norm has %d features for %d conv output channels", bn.NumFeatures, conv.OutChannels)
	}
	f := &Conv2d{InChannels: conv.InChannels, OutChannels: conv.OutChannels, KernelSize: conv.KernelSize, ConvParams: conv.ConvParams}
	f.Weight = Zeros(conv.Weight.shape...)
	f.Bias = Zeros(conv.OutChannels)
	per := len(conv.Weight.data) / conv.OutChannels
	for o := range conv.OutChannels {
		scale := 1 / math.Sqrt(float64(bn.RunningVar.data[o])+bn.Eps)
		if bn.Weight != nil {
			scale *= float64(bn.Weight.data[o])
		}
		for i := o * per; i < (o+1)*per; i++ {
			f.Weight.data[i] = float32(float64(conv.Weight.data[i]) * scale)
		}
		b := -float64(bn.RunningMean.data[o])
		if conv.Bias != nil {
			b += float64(conv.Bias.data[o])
		}
		b *= scale
		if bn.Bias != nil {
			b += float64(bn.Bias.data[o])
		}
		f.Bias.data[o] = float32(b)
	}
	f.RegisterParameter("weight", &f.Weight)
	f.RegisterParameter("bias", &f.Bias)
	f.Eval()
	return f, nil
}
