// Runs ONNX models with ONNX Runtime (npm onnxruntime-node, CPU), one request per line on stdin:
//   {"model": "DIR/model.onnx", "input": "INPUT.bin", "dims": [N, C, H, W]}
// (one float32 input named "input", little-endian) and answers one JSON line per request:
//   {"dims": [...], "data": [...], "ms": ..., "cpu_ms": ...} with the first output and the
// wall-clock and CPU milliseconds of loading and running the model, or {"error": "..."}.
// One process serves every model of nn/graph/onnximport's torchvision export test, so Node and
// the runtime start once. Graph optimizations are off: the reference is ONNX Runtime's kernels on
// the graph as exported. With them on, ORT 1.20 fuses torch's Pad + AveragePool (avg_pool2d's
// count_include_pad) into an AveragePool that leaves the padding out of the count, and
// inception_v3's logits come out up to 4.8x torch's (ckpt's and unoptimized ORT's equal torch's). Needs NODE_PATH to reach onnxruntime-node (scripts/setup-interop.sh).
// Usage: node ort_serve.js < requests
'use strict';
const fs = require('fs');
const readline = require('readline');
const ort = require('onnxruntime-node');

async function serve(req) {
  const buf = fs.readFileSync(req.input);
  const data = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  const start = Date.now();
  const cpu = process.cpuUsage();
  const session = await ort.InferenceSession.create(req.model, {
    executionProviders: ['cpu'], intraOpNumThreads: 1, interOpNumThreads: 1,
    graphOptimizationLevel: 'disabled',
  });
  const results = await session.run({ input: new ort.Tensor('float32', data, req.dims) });
  const out = results[session.outputNames[0]];
  const used = process.cpuUsage(cpu);
  const resp = {
    dims: out.dims, data: Array.from(out.data), ms: Date.now() - start,
    cpu_ms: Math.round((used.user + used.system) / 1000),
  };
  await session.release();
  return resp;
}

async function main() {
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of rl) {
    if (!line.trim()) {
      continue;
    }
    let resp;
    try {
      resp = await serve(JSON.parse(line));
    } catch (e) {
      resp = { error: e && e.message ? e.message : String(e) };
    }
    process.stdout.write(JSON.stringify(resp) + '\n');
  }
}

main().catch((e) => {
  process.stderr.write('ort_serve: ' + (e && e.message ? e.message : String(e)) + '\n');
  process.exit(1);
});
