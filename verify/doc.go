// Package verify compares a model output with a reference output, the last
// step of ckpt's data path (file -> format reader -> named tensors -> module
// -> forward -> report).
//
// Compare measures the element-wise agreement (maximum absolute and relative
// error, cosine similarity) and, for outputs shaped [rows, classes], whether
// each row ranks the same classes first (top-1 and top-5 agreement). A
// [Report] prints as text for people and marshals to JSON for scripts.
//
// The package only compares numbers; running models is package nn/models'
// job, reading files is package formats'.
package verify
