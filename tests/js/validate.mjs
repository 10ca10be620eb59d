// Validate one GLB with the Khronos glTF validator and print its report as JSON.
// Usage: node validate.mjs FILE.glb   (exit 0 when the report was produced)
import { readFile } from "node:fs/promises";
import validator from "gltf-validator";

const path = process.argv[2];
if (!path) {
  console.error("usage: node validate.mjs FILE.glb");
  process.exit(2);
}
const data = new Uint8Array(await readFile(path));
const report = await validator.validateBytes(data, {
  uri: path,
  maxIssues: 100,
  // A GLB is self-contained: any external reference is a bug.
  externalResourceFunction: (uri) => Promise.reject(new Error(`external resource ${uri}`)),
});
console.log(JSON.stringify(report, null, 2));
