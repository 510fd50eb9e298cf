// Validates Kubernetes objects (a JSON array on stdin) against Istio's CRD schemas, as
// packaged by @kubernetes-models/istio, from the node_modules directory given as the first
// argument (the test peers'). Prints one line per object; exits 1 if any fails.
import { pathToFileURL } from "node:url";
import { join } from "node:path";

const istio = join(process.argv[2], "@kubernetes-models/istio");
const load = (dir) => import(pathToFileURL(join(istio, dir, "index.js")).href);
const extensions = await load("extensions.istio.io/v1alpha1");
const networking = await load("networking.istio.io/v1");
const security = await load("security.istio.io/v1");

const models = {
  "extensions.istio.io/v1alpha1": extensions,
  "networking.istio.io/v1": networking,
  "security.istio.io/v1": security,
};

let input = "";
for await (const chunk of process.stdin) input += chunk;
let failed = false;
for (const object of JSON.parse(input)) {
  const name = `${object.kind}/${object.metadata?.name}`;
  const Model = models[object.apiVersion]?.[object.kind];
  if (!Model) {
    console.log(`${name}: no schema for ${object.apiVersion} ${object.kind}`);
    failed = true;
    continue;
  }
  try {
    new Model(object).validate();
    console.log(`${name}: ok`);
  } catch (e) {
    console.log(`${name}: ${e.message}`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
