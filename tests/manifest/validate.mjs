// Validates a Forge manifest offline with @forge/manifest's full rule set: `validate()` runs the
// FullValidationProcessor (file + YAML parsing, the JSON schema, then the module, resource, remote,
// endpoint/trigger, permission/scope and runtime rules), which is stricter than the bare schema.
//
// Usage: node tests/manifest/validate.mjs [manifest.yml ...]   (default: manifest.yml at the repo root)
// Needs ACCESS_DESK_NODE_MODULES: the node_modules directory that holds @forge/manifest (./test sets it).
// Several manifests in one run share the compiled schema (compiling it takes seconds).
//
// Prints one JSON object per manifest to stdout, one per line, in argument order:
//   {"manifest": <absolute path>, "ok": bool, "success": bool,
//    "errors": [{"level": "error"|"warning", "message", "reference", "line", "column"}, ...],
//    "parsed": <the manifest as parsed by @forge/manifest, or null>}
// Exit status: 0 when all are valid (warnings allowed), 1 on any validation error, 2 when it cannot run.
import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

// Anything the package logs goes to stderr so stdout stays one JSON document.
console.log = console.info = console.debug = (...args) => console.error(...args);

function fail(message) {
  process.stderr.write(`validate.mjs: ${message}\n`);
  process.exit(2);
}

const modulesDir = process.env.ACCESS_DESK_NODE_MODULES;
if (!modulesDir) {
  fail("ACCESS_DESK_NODE_MODULES is not set (the node_modules directory holding @forge/manifest)");
}
const packageDir = path.join(path.resolve(modulesDir), "@forge", "manifest");
if (!existsSync(path.join(packageDir, "package.json"))) {
  fail(`@forge/manifest is not installed under ${modulesDir} (run ./test, which installs it)`);
}

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const args = process.argv.slice(2);
const manifestPaths = (args.length ? args : [path.join(repoRoot, "manifest.yml")]).map((p) => path.resolve(p));

// Resolve the package the way Node would from inside that node_modules directory.
const require = createRequire(path.join(path.resolve(modulesDir), "noop.js"));
let forgeManifest;
try {
  forgeManifest = require("@forge/manifest");
} catch (e) {
  // @forge/manifest 13.x requires tslib at run time without declaring it: install it alongside.
  fail(`cannot load @forge/manifest from ${modulesDir}: ${e.message}`);
}
if (typeof forgeManifest.validate !== "function") {
  fail("@forge/manifest does not export validate(); its API has changed");
}

let allOk = true;
for (const manifestPath of manifestPaths) {
  // validate(basic = false, manifestPath): basic=false selects the FULL validation type.
  const result = await forgeManifest.validate(false, manifestPath);
  const errors = (result.errors ?? []).map((e) => ({
    level: e.level,
    message: e.message,
    reference: e.reference ?? null,
    line: e.line ?? null,
    column: e.column ?? null,
  }));
  // Some rules report failure without an error entry (e.g. after a YAML parse error), so both count.
  const ok = result.success === true && !errors.some((e) => e.level === "error");
  allOk &&= ok;
  process.stdout.write(
    JSON.stringify({
      manifest: manifestPath,
      ok,
      success: result.success === true,
      errors,
      parsed: result.manifestObject?.typedContent ?? null,
    }) + "\n",
  );
}
process.exitCode = allOk ? 0 : 1;
