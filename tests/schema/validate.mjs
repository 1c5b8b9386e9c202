#!/usr/bin/env node
// Validate Kubernetes objects against the Kubernetes OpenAPI schemas (kubernetes-models 5.x,
// ajv-compiled), plus cert-manager and prometheus-operator CRD schemas; unknown fields from
// the models' declarations (as the API server's strict field validation);
// plus the API server's pod-spec rules that OpenAPI cannot express (native sidecars).
//
//   node tests/schema/validate.mjs PATH...
//
// PATH is a .yaml/.yml/.json file (one or many documents; a JSON array, or a List's
// items, count as many) or a directory of them. Prints one line per problem naming the
// file, the object (kind namespace/name) and the JSON path, then a summary
// "schema: N objects valid, M invalid"; exit 0 when all are valid, 1 otherwise, 2 on usage.
// Run by tests/integration/test_chart.sh (chart renders, deploy/*.yaml) and by the tests
// that apply the webhook's JSONPatch (tests/lib/py/gg_testlib.py k8s_validate).
// The modules come from build/tools/schema/node_modules (scripts/tools.sh); GG_TOOLS moves it.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const here = path.dirname(new URL(import.meta.url).pathname);
const tools = process.env.GG_TOOLS || path.join(here, "..", "..", "build", "tools");
const modules = path.join(tools, "schema", "node_modules");
if (!fs.existsSync(path.join(modules, "kubernetes-models", "package.json"))) {
  console.error(`schema: ${modules}/kubernetes-models is missing: run make deps (scripts/tools.sh)`);
  process.exit(2);
}
const require = createRequire(path.join(modules, "x.js"));
const YAML = require("yaml");

// apiVersion -> the packages that may hold its kinds.
function candidates(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  if (group === "") return [`kubernetes-models/${version}/${kind}`];
  if (group.endsWith("cert-manager.io"))
    return [`@kubernetes-models/cert-manager/${group}/${version}/${kind}`];
  if (group === "monitoring.coreos.com")
    return [`@kubernetes-models/prometheus-operator/${group}/${version}/${kind}`];
  return [`kubernetes-models/${group}/${version}/${kind}`];
}

const classes = new Map();
const modelFiles = new Map(); // "apiVersion kind" -> the model's .d.ts
async function modelFor(apiVersion, kind) {
  const key = `${apiVersion} ${kind}`;
  if (classes.has(key)) return classes.get(key);
  let cls = null;
  for (const spec of candidates(apiVersion, kind)) {
    // Packages are ESM with an "exports" map; their files sit at the same paths.
    const file = path.join(modules, spec + ".js");
    if (!fs.existsSync(file)) continue;
    const mod = await import(pathToFileURL(file).href);
    cls = mod[kind] || mod.default || null;
    if (cls) {
      modelFiles.set(key, file.replace(/\.js$/, ".d.ts"));
      break;
    }
  }
  classes.set(key, cls);
  return cls;
}

// "/spec/containers/0/image" -> ".spec.containers[0].image"
function jsonPath(instancePath) {
  if (!instancePath) return "(object)";
  return instancePath
    .split("/")
    .slice(1)
    .map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"))
    .map((p) => (/^\d+$/.test(p) ? `[${p}]` : /^[A-Za-z_][\w-]*$/.test(p) ? `.${p}` : `[${JSON.stringify(p)}]`))
    .join("");
}

// ---- unknown fields, from the models' TypeScript declarations ---------------------------
// The compiled JSON schemas allow properties they do not know (the OpenAPI documents set no
// additionalProperties), while the API server's strict field validation (kubectl's
// default) rejects them. Each model ships a .d.ts whose interface lists every property and
// its type: that list is the set of known fields, and imported interfaces are followed into
// nested objects, arrays and string maps (enums are in the JSON schemas already).
const dtsCache = new Map();
function parseDts(file) {
  if (dtsCache.has(file)) return dtsCache.get(file);
  let info = null;
  if (fs.existsSync(file)) {
    const text = fs.readFileSync(file, "utf8").replace(/\/\*[\s\S]*?\*\//g, "");
    const imports = new Map();
    for (const m of text.matchAll(/^import \{ (\w+) \} from "([^"]+)";$/gm)) {
      const target = m[2].startsWith(".")
        ? path.resolve(path.dirname(file), m[2].replace(/\.js$/, ".d.ts"))
        : path.join(modules, m[2] + ".d.ts");
      imports.set(m[1], target);
    }
    const lines = text.split("\n");
    const start = lines.findIndex((l) => /^export interface \w+( extends [\w, ]+)? \{$/.test(l));
    if (start >= 0) {
      info = { props: new Map(), open: false, imports };
      // Properties of the interfaces it extends (TypeMeta is apiVersion and kind, listed
      // anyway); one that cannot be read makes the object open rather than wrongly strict.
      const ext = /extends ([\w, ]+) \{$/.exec(lines[start]);
      for (const name of ext ? ext[1].split(/, */) : []) {
        if (name === "TypeMeta") continue;
        const base = imports.has(name) ? parseDts(imports.get(name)) : null;
        if (!base) {
          info.open = true;
          continue;
        }
        for (const [k, t] of base.props) info.props.set(k, t);
        for (const [k, f] of base.imports) if (!imports.has(k)) imports.set(k, f);
        info.open ||= base.open;
      }
      for (let i = start + 1; i < lines.length && lines[i] !== "}"; i++) {
        const l = lines[i];
        if (/^ {4}\[key: string\]/.test(l)) info.open = true;
        const m = /^ {4}"([^"]+)"\??: (.*)$/.exec(l);
        if (!m) continue;
        let type = m[2];
        if (type.endsWith("{")) {
          // An inline object type: up to its closing brace at the same depth.
          const body = [];
          for (i++; i < lines.length && !/^ {4}\};?$/.test(lines[i]); i++) body.push(lines[i].trim());
          type = "{ " + body.join(" ") + " }";
        }
        info.props.set(m[1], type.replace(/;$/, ""));
      }
    }
  }
  dtsCache.set(file, info);
  return info;
}

function fieldProblems(value, file, at, out) {
  const info = parseDts(file);
  if (!info || !value || typeof value !== "object" || Array.isArray(value)) return;
  for (const [key, v] of Object.entries(value)) {
    const here = /^[A-Za-z_][\w-]*$/.test(key) ? `${at}.${key}` : `${at}[${JSON.stringify(key)}]`;
    if (!info.props.has(key)) {
      if (!info.open) out.push([here, `unknown field "${key}" (the API server's strict field validation rejects it)`]);
      continue;
    }
    const type = info.props.get(key);
    let m;
    if ((m = /^(I\w+)$/.exec(type)) && info.imports.has(m[1])) {
      fieldProblems(v, info.imports.get(m[1]), here, out);
    } else if ((m = /^Array<(I\w+)>$/.exec(type)) && info.imports.has(m[1]) && Array.isArray(v)) {
      v.forEach((item, i) => fieldProblems(item, info.imports.get(m[1]), `${here}[${i}]`, out));
    } else if ((m = /^\{ \[key: string\]: (I\w+); \}$/.exec(type)) && info.imports.has(m[1]) && v && typeof v === "object") {
      for (const [k, item] of Object.entries(v)) fieldProblems(item, info.imports.get(m[1]), `${here}[${JSON.stringify(k)}]`, out);
    }
  }
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

// The API server's pod-spec validation (pkg/apis/core/validation) that the OpenAPI schema
// does not carry: each rule is one the API server rejects a pod for.
function podSpecRules(spec, at) {
  const out = [];
  if (!spec || typeof spec !== "object") return out;
  const names = new Map();
  const each = (list, field) =>
    (Array.isArray(list) ? list : []).forEach((c, i) => {
      if (!c || typeof c !== "object") return;
      const p = `${at}.${field}[${i}]`;
      if (typeof c.name === "string") {
        if (!DNS1123_LABEL.test(c.name) || c.name.length > 63)
          out.push([`${p}.name`, `"${c.name}" is not a DNS-1123 label`]);
        if (names.has(c.name)) out.push([`${p}.name`, `duplicate container name "${c.name}" (also ${names.get(c.name)})`]);
        names.set(c.name, p);
      }
      (c.ports || []).forEach((port, j) => {
        if (port && Number.isInteger(port.containerPort) && (port.containerPort < 1 || port.containerPort > 65535))
          out.push([`${p}.ports[${j}].containerPort`, `${port.containerPort} is not between 1 and 65535`]);
      });
      if (field === "initContainers") {
        if (c.restartPolicy !== undefined && c.restartPolicy !== "Always")
          out.push([`${p}.restartPolicy`, `Unsupported value: "${c.restartPolicy}": supported values: "Always" (a native sidecar)`]);
        if (c.restartPolicy !== "Always")
          for (const f of ["lifecycle", "livenessProbe", "readinessProbe", "startupProbe"])
            if (c[f] !== undefined) out.push([`${p}.${f}`, `may not be set for init containers without restartPolicy=Always`]);
      } else if (c.restartPolicy !== undefined) {
        out.push([`${p}.restartPolicy`, `Forbidden: may not be set for non-init containers`]);
      }
    });
  each(spec.initContainers, "initContainers");
  each(spec.containers, "containers");
  if (!Array.isArray(spec.containers) || spec.containers.length === 0)
    out.push([`${at}.containers`, "Required value: a pod needs at least one container"]);
  return out;
}

function podSpecs(obj) {
  switch (obj.kind) {
    case "Pod":
      return [[obj.spec, ".spec"]];
    case "Deployment":
    case "StatefulSet":
    case "DaemonSet":
    case "ReplicaSet":
    case "Job":
      return [[obj.spec && obj.spec.template && obj.spec.template.spec, ".spec.template.spec"]];
    default:
      return [];
  }
}

function describe(obj) {
  const m = (obj && obj.metadata) || {};
  const name = m.name || (m.generateName ? m.generateName + "*" : "(unnamed)");
  return `${obj && obj.kind ? obj.kind : "(no kind)"} ${m.namespace ? m.namespace + "/" : ""}${name}`;
}

async function problems(obj) {
  if (!obj || typeof obj !== "object" || Array.isArray(obj)) return [["(document)", "not an object"]];
  if (typeof obj.apiVersion !== "string" || typeof obj.kind !== "string")
    return [["(object)", "apiVersion and kind are required"]];
  const cls = await modelFor(obj.apiVersion, obj.kind);
  if (!cls) return [[".kind", `no schema for ${obj.apiVersion} ${obj.kind}`]];
  const dts = modelFiles.get(`${obj.apiVersion} ${obj.kind}`);
  const out = [];
  try {
    new cls(obj).validate();
  } catch (e) {
    if (!Array.isArray(e.errors)) throw e;
    for (const err of e.errors) {
      let msg = err.message || err.keyword;
      if (err.keyword === "enum" && err.params && err.params.allowedValues)
        msg += `: ${JSON.stringify(err.params.allowedValues)}`;
      if (err.keyword === "required" && err.params) msg = `required property "${err.params.missingProperty}" is missing`;
      out.push([jsonPath(err.instancePath), msg]);
    }
  }
  if (dts) fieldProblems(obj, dts, "", out);
  for (const [spec, at] of podSpecs(obj)) out.push(...podSpecRules(spec, at));
  return out;
}

function documents(file) {
  const text = fs.readFileSync(file, "utf8");
  let docs;
  if (file.endsWith(".json")) {
    const v = JSON.parse(text);
    docs = Array.isArray(v) ? v : [v];
  } else {
    docs = YAML.parseAllDocuments(text).map((d) => {
      if (d.errors.length) throw new Error(d.errors[0].message);
      return d.toJS();
    });
  }
  const flat = [];
  for (const d of docs) {
    if (d === null || d === undefined) continue;
    if (d && typeof d.kind === "string" && d.kind.endsWith("List") && Array.isArray(d.items)) flat.push(...d.items);
    else flat.push(d);
  }
  return flat;
}

function files(p) {
  const st = fs.statSync(p);
  if (!st.isDirectory()) return [p];
  return fs
    .readdirSync(p)
    .sort()
    .flatMap((f) => files(path.join(p, f)))
    .filter((f) => /\.(ya?ml|json)$/.test(f));
}

const args = process.argv.slice(2);
if (args.length === 0) {
  console.error("usage: node tests/schema/validate.mjs FILE-OR-DIR...");
  process.exit(2);
}
let valid = 0;
let invalid = 0;
for (const f of args.flatMap(files)) {
  let docs;
  try {
    docs = documents(f);
  } catch (e) {
    console.log(`INVALID ${f}: cannot parse: ${e.message}`);
    invalid++;
    continue;
  }
  for (const obj of docs) {
    const found = await problems(obj);
    if (found.length === 0) {
      valid++;
      continue;
    }
    invalid++;
    for (const line of new Set(found.map(([where, msg]) => `INVALID ${f}: ${describe(obj)} ${where}: ${msg}`))) console.log(line);
  }
}
console.log(`schema: ${valid} objects valid, ${invalid} invalid`);
process.exit(invalid === 0 ? 0 : 1);
