#!/usr/bin/env node
// Runs a local TensorFlow.js graph or layers model on the pure-JS cpu backend (no tfjs-node, no
// native code) and writes every output as .npy plus a JSON description: output names, dtypes and
// shapes, the tfjs version, the sha256 of model.json and of its weight files, the inputs, and the
// wall and CPU time of each run. The golden tests (tests/golden/golden_test.py) and the benchmark
// of "pure-JS TF.js time on the same input" both use it.
//
// Usage:
//   node run_model.mjs --tfjs-dir DIR --model path/to/model.json --out-dir DIR
//                      [--input [name=]file.npy]... [--runs N] [--warmup N]
//
//   --tfjs-dir  folder holding node_modules/@tensorflow/* (printed by tests/golden/install-tfjs.sh;
//               default: $IMGINTERP_TFJS_DIR)
//   --input     a .npy file (v1/v2, little-endian, C order; float32, int32, uint8 or float64,
//               float64 is converted to float32). Without a name, inputs bind to the model's
//               inputs in order.
//   --runs      timed runs after the warm-up runs (default 1); outputs are from the last run.
//   --warmup    untimed runs first (default 0).
//
// Writes <out-dir>/result.json and <out-dir>/output_<i>.npy. Exit code 0 on success; on error a
// message on stderr and exit code 1.

import {createHash} from 'node:crypto';
import fs from 'node:fs';
import {createRequire} from 'node:module';
import path from 'node:path';
import {performance} from 'node:perf_hooks';

function usageError(message) {
  process.stderr.write(`run_model: ${message}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const args = {inputs: [], runs: 1, warmup: 0, tfjsDir: process.env.IMGINTERP_TFJS_DIR || ''};
  for (let i = 0; i < argv.length; ++i) {
    const flag = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usageError(`${flag} needs a value`);
      return argv[++i];
    };
    switch (flag) {
      case '--tfjs-dir': args.tfjsDir = value(); break;
      case '--model': args.model = value(); break;
      case '--out-dir': args.outDir = value(); break;
      case '--input': args.inputs.push(value()); break;
      case '--runs': args.runs = Number.parseInt(value(), 10); break;
      case '--warmup': args.warmup = Number.parseInt(value(), 10); break;
      default: usageError(`unknown argument '${flag}'`);
    }
  }
  if (!args.tfjsDir) usageError('--tfjs-dir (or IMGINTERP_TFJS_DIR) is required');
  if (!args.model) usageError('--model is required');
  if (!args.outDir) usageError('--out-dir is required');
  if (!(args.runs >= 1)) usageError('--runs must be >= 1');
  if (!(args.warmup >= 0)) usageError('--warmup must be >= 0');
  return args;
}

// ---- .npy (the format numpy reads and writes; small enough to do by hand) ----

const kNpyDtypes = {
  '<f4': {tf: 'float32', array: Float32Array},
  '<i4': {tf: 'int32', array: Int32Array},
  '|u1': {tf: 'int32', array: Uint8Array},
  '<f8': {tf: 'float32', array: Float64Array},
  '|b1': {tf: 'bool', array: Uint8Array},
};

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.readUInt32BE(0) !== 0x934e554d || buf.readUInt8(4) !== 0x50) {
    throw new Error(`${file} is not a .npy file`);
  }
  const major = buf.readUInt8(6);
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const headerStart = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', headerStart, headerStart + headerLen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeText === undefined) throw new Error(`${file}: bad .npy header`);
  if (fortran === 'True') throw new Error(`${file}: Fortran-ordered arrays are not supported`);
  const kind = kNpyDtypes[descr];
  if (!kind) throw new Error(`${file}: dtype ${descr} not supported (use <f4, <i4 or |u1)`);
  const shape = shapeText.split(',').map((s) => s.trim()).filter((s) => s).map(Number);
  const offset = headerStart + headerLen;
  const bytes = buf.buffer.slice(buf.byteOffset + offset, buf.byteOffset + buf.length);
  let values = new kind.array(bytes);
  if (descr === '<f8') values = Float32Array.from(values);
  if (descr === '|u1') values = Int32Array.from(values);
  return {shape, dtype: kind.tf, values, descr};
}

function writeNpy(file, values, shape, dtype) {
  const descr = {float32: '<f4', int32: '<i4', bool: '|b1'}[dtype];
  if (!descr) throw new Error(`cannot write dtype ${dtype} as .npy`);
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const unpadded = 10 + header.length + 1;
  header += ' '.repeat((64 - (unpadded % 64)) % 64) + '\n';
  const head = Buffer.alloc(10);
  head.writeUInt32BE(0x934e554d, 0);
  head.writeUInt8(0x50, 4);  // "\x93NUMPY"
  head.writeUInt8(0x59, 5);
  head.writeUInt8(1, 6);
  head.writeUInt8(0, 7);
  head.writeUInt16LE(header.length, 8);
  const typed = dtype === 'float32' ? Float32Array.from(values)
      : dtype === 'int32' ? Int32Array.from(values) : Uint8Array.from(values);
  fs.writeFileSync(file, Buffer.concat([head, Buffer.from(header, 'latin1'),
    Buffer.from(typed.buffer, typed.byteOffset, typed.byteLength)]));
}

function sha256(data) {
  return createHash('sha256').update(data).digest('hex');
}

// ---- model loading from local files ----

// An IOHandler reading model.json and its weight shards from disk. tfjs reads files only
// through tfjs-node, which downloads a native binary at install, so we supply our own.
function fileHandler(tf, modelPath, digests) {
  const dir = path.dirname(modelPath);
  return {
    async load() {
      const jsonBytes = fs.readFileSync(modelPath);
      digests.modelJson = sha256(jsonBytes);
      const modelJson = JSON.parse(jsonBytes.toString('utf8'));
      const all = createHash('sha256').update(jsonBytes);
      digests.weights = [];
      const artifacts = await tf.io.getModelArtifactsForJSON(modelJson, async (manifest) => {
        const specs = [];
        const buffers = [];
        for (const group of manifest) {
          specs.push(...group.weights);
          for (const shard of group.paths) {
            const bytes = fs.readFileSync(path.join(dir, shard));
            all.update(bytes);
            digests.weights.push({path: shard, bytes: bytes.length, sha256: sha256(bytes)});
            buffers.push(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
          }
        }
        return [specs, tf.io.CompositeArrayBuffer.join(buffers)];
      });
      digests.modelJsonAndWeights = all.digest('hex');
      digests.format = modelJson.format || '';
      return artifacts;
    },
  };
}

function outputNames(model, isGraph, count) {
  if (isGraph) return model.outputNodes.slice(0, count);
  return model.outputs.map((o) => o.name).slice(0, count);
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const tfjsDir = path.resolve(args.tfjsDir);
  const require = createRequire(path.join(tfjsDir, 'package.json'));
  const tf = require('@tensorflow/tfjs-core');
  require('@tensorflow/tfjs-backend-cpu');
  const converter = require('@tensorflow/tfjs-converter');
  const layers = require('@tensorflow/tfjs-layers');
  const versions = {};
  for (const pkg of ['tfjs-core', 'tfjs-converter', 'tfjs-backend-cpu', 'tfjs-layers']) {
    versions[pkg] = require(`@tensorflow/${pkg}/package.json`).version;
  }
  tf.enableProdMode();  // no debug checks, no "install tfjs-node" banner
  await tf.setBackend('cpu');
  await tf.ready();

  const modelPath = path.resolve(args.model);
  const format = JSON.parse(fs.readFileSync(modelPath, 'utf8')).format || 'graph-model';
  const isGraph = format !== 'layers-model';
  const digests = {};
  const handler = fileHandler(tf, modelPath, digests);
  const loadStart = performance.now();
  const model = isGraph ? await converter.loadGraphModel(handler)
                        : await layers.loadLayersModel(handler);
  const loadMs = performance.now() - loadStart;

  const inputNames = model.inputs.map((i) => i.name);
  const inputs = [];
  const inputInfo = [];
  args.inputs.forEach((spec, index) => {
    const eq = spec.indexOf('=');
    const named = eq > 0 && !fs.existsSync(spec);
    const name = named ? spec.slice(0, eq) : inputNames[index];
    const file = named ? spec.slice(eq + 1) : spec;
    if (name === undefined) throw new Error(`more inputs given than the model has (${inputNames})`);
    const npy = readNpy(file);
    inputs.push({name, tensor: tf.tensor(npy.values, npy.shape, npy.dtype)});
    inputInfo.push({name, file: path.resolve(file), sha256: sha256(fs.readFileSync(file)),
      npy_dtype: npy.descr, dtype: npy.dtype, shape: npy.shape});
  });
  if (inputs.length !== inputNames.length) {
    throw new Error(`model takes ${inputNames.length} input(s) (${inputNames.join(', ')}), ` +
                    `got ${inputs.length}`);
  }

  let useAsync = false;
  const runOnce = async () => {
    if (!isGraph) {
      return model.predict(inputs.length === 1 ? inputs[0].tensor : inputs.map((i) => i.tensor));
    }
    const feed = {};
    for (const i of inputs) feed[i.name] = i.tensor;
    if (!useAsync) {
      try {
        return model.execute(feed);
      } catch (e) {
        // Models with control flow (e.g. tf.cond) only run through executeAsync.
        if (!/executeAsync/.test(String(e.message))) throw e;
        useAsync = true;
      }
    }
    return model.executeAsync(feed);
  };
  const collect = async (result) => {
    const list = Array.isArray(result) ? result : [result];
    const out = [];
    for (const t of list) out.push({dtype: t.dtype, shape: t.shape, values: await t.data()});
    tf.dispose(result);
    return out;
  };

  for (let i = 0; i < args.warmup; ++i) await collect(await runOnce());
  const runMs = [];
  const cpuMs = [];
  let outputs;
  for (let i = 0; i < args.runs; ++i) {
    const start = performance.now();
    const cpuStart = process.cpuUsage();
    outputs = await collect(await runOnce());  // reading the values back is part of a run
    runMs.push(performance.now() - start);
    const cpu = process.cpuUsage(cpuStart);
    cpuMs.push((cpu.user + cpu.system) / 1e3);
  }

  fs.mkdirSync(args.outDir, {recursive: true});
  const names = outputNames(model, isGraph, outputs.length);
  const described = outputs.map((o, i) => {
    const file = `output_${i}.npy`;
    writeNpy(path.join(args.outDir, file), o.values, o.shape, o.dtype);
    let min = Infinity;
    let max = -Infinity;
    for (const v of o.values) {
      if (v < min) min = v;
      if (v > max) max = v;
    }
    return {index: i, name: names[i] ?? `output_${i}`, dtype: o.dtype, shape: o.shape, file,
      min, max};
  });
  const sorted = [...runMs].sort((a, b) => a - b);
  const cpuSorted = [...cpuMs].sort((a, b) => a - b);
  const result = {
    tfjs: versions,
    backend: tf.getBackend(),
    node: process.version,
    model: {path: modelPath, format, sha256_model_json: digests.modelJson,
      sha256_model_json_and_weights: digests.modelJsonAndWeights, weights: digests.weights,
      input_names: inputNames, output_names: names},
    inputs: inputInfo,
    outputs: described,
    timing: {load_ms: loadMs, warmup_runs: args.warmup, runs_ms: runMs,
      median_ms: sorted[Math.floor(sorted.length / 2)], min_ms: sorted[0],
      // CPU time of the (single-threaded) cpu backend: close to the wall time on an idle
      // machine, and still meaningful when other processes load it.
      cpu_ms: cpuMs, median_cpu_ms: cpuSorted[Math.floor(cpuSorted.length / 2)],
      execute: isGraph ? (useAsync ? 'executeAsync' : 'execute') : 'predict'},
  };
  fs.writeFileSync(path.join(args.outDir, 'result.json'), JSON.stringify(result, null, 2) + '\n');
}

main().catch((e) => {
  process.stderr.write(`run_model: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
