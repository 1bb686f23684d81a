// Runs an ONNX model with ONNX Runtime (npm onnxruntime-node, CPU) on one float32 input and
// prints the first output as JSON: {"name": ..., "dims": [...], "data": [...]}.
// Used by formats/onnx's interop test; needs NODE_PATH to reach onnxruntime-node
// (/work/shared/tools/setup-interop.sh installs it under $HOME/.cache/ckpt-interop/ort).
// Usage: node ort_run.js MODEL.onnx INPUT_NAME INPUT.bin DIM[,DIM...]
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

async function main() {
  const [model, inputName, inputFile, dimsArg] = process.argv.slice(2);
  if (!dimsArg) {
    throw new Error('usage: node ort_run.js MODEL.onnx INPUT_NAME INPUT.bin DIM[,DIM...]');
  }
  const dims = dimsArg.split(',').map(Number);
  const buf = fs.readFileSync(inputFile);
  const data = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  const session = await ort.InferenceSession.create(model, { executionProviders: ['cpu'] });
  const feeds = { [inputName]: new ort.Tensor('float32', data, dims) };
  const results = await session.run(feeds);
  const name = session.outputNames[0];
  const out = results[name];
  process.stdout.write(JSON.stringify({ name, dims: out.dims, data: Array.from(out.data) }) + '\n');
}

main().catch((e) => {
  process.stderr.write('ort_run: ' + (e && e.message ? e.message : String(e)) + '\n');
  process.exit(1);
});
