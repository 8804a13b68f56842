// Validates Kubernetes objects against the API schemas of kubernetes-models (and the
// prometheus-operator CRDs): every object of a JSON array (helm-render -o json) is built as the
// model class of its apiVersion/kind and validate()d; an apiVersion/kind without a model fails.
//
//   node validate_objects.cjs --models-dir DIR OBJECTS.json
//
// DIR is what tests/helm/install-k8s-models.sh prints. Prints one line per object; exit 1 when
// any object is invalid.
'use strict';
const fs = require('fs');
const path = require('path');

function parseArgs(argv) {
  const args = {modelsDir: '', file: ''};
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--models-dir') args.modelsDir = argv[++i];
    else args.file = argv[i];
  }
  if (!args.modelsDir || !args.file) {
    console.error('usage: node validate_objects.cjs --models-dir DIR OBJECTS.json');
    process.exit(2);
  }
  return args;
}

// apiVersion -> module folder of its model classes.
function modelModule(modelsDir, apiVersion, kind) {
  const nodeModules = path.join(modelsDir, 'node_modules');
  if (apiVersion.startsWith('monitoring.coreos.com/')) {
    return path.join(nodeModules, '@kubernetes-models/prometheus-operator', apiVersion, kind);
  }
  return path.join(nodeModules, 'kubernetes-models', apiVersion, kind);
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  const objects = JSON.parse(fs.readFileSync(args.file, 'utf8'));
  let failures = 0;
  for (const obj of objects) {
    const id = `${obj.apiVersion}/${obj.kind} ${obj.metadata && obj.metadata.name}`;
    let Model;
    try {
      const mod = require(modelModule(args.modelsDir, obj.apiVersion, obj.kind));
      Model = mod[obj.kind];
    } catch (e) {
      Model = undefined;
    }
    if (typeof Model !== 'function') {
      console.log(`INVALID ${id}: no schema for apiVersion ${obj.apiVersion} kind ${obj.kind}`);
      failures++;
      continue;
    }
    try {
      new Model(obj).validate();
      console.log(`ok ${id}`);
    } catch (e) {
      const details = e.errors ? JSON.stringify(e.errors, null, 1) : '';
      console.log(`INVALID ${id}: ${e.message} ${details}`);
      failures++;
    }
  }
  console.log(`${objects.length - failures}/${objects.length} objects valid`);
  process.exit(failures ? 1 : 0);
}

main();
