// Package convert implements `ckpt convert`: write a checkpoint in another
// format (PyTorch, safetensors, ONNX), losslessly unless a cast is asked
// for, optionally taking a sub-tree, renaming tensors, sharding the output
// or writing the weights into an existing ONNX graph.
//
// The work is formats.Transform then formats.Save; this package checks the
// options first (every mistake in them is a usage error, exit 2, before any
// file is read), refuses an existing output without --force, reports what
// the libraries did (cast counts, metadata the target cannot hold, tensors a
// graph does not use) and draws progress on a terminal. Save writes through
// temporary files renamed into place; an interrupt during the write removes
// them (interrupt.go), so a failed or interrupted convert leaves nothing.
package convert
