// Renders deploy/base and every deploy/overlays/* with kustomize, validates each object
// against the Kubernetes schemas, checks mdagg's pod rules (grace budget below the pod's
// termination grace period, probes on the ops endpoints, locked-down security context,
// SHARD_COUNT = replicas, the admin token from a required Secret, a NetworkPolicy admitting
// only named peers to the ops port, a PodDisruptionBudget) and runs `mdagg --check-config` on
// the config each render mounts. deploy/monitoring (ServiceMonitor, PrometheusRule, dashboard)
// is rendered too and checked against the base's Service.
// Usage: MDAGG_BIN=build/mdagg node validate.mjs     (exit 0: all good, 1: problems listed)
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { parse as parseYaml } from "yaml";
import { join, relative } from "node:path";
import { checkMonitoring, checkSchemas, checkWorkloads, configTexts, deployDir, render, tokenEnvOf } from "./checks.mjs";

const mdagg = process.env.MDAGG_BIN;
const parseConfigTokenEnv = (text) => parseYaml(text)?.admin?.token_env;
if (!mdagg || !existsSync(mdagg)) {
  console.error(`validate: set MDAGG_BIN to a built mdagg (got ${mdagg ?? "nothing"}): every config is checked with it`);
  process.exit(2);
}

const overlays = join(deployDir, "overlays");
const targets = [join(deployDir, "base"), ...readdirSync(overlays).map((d) => join(overlays, d))];
const scratch = mkdtempSync(join(tmpdir(), "mdagg-deploy-"));
let failed = 0, passed = 0;
try {
  for (const dir of targets) {
    const label = relative(join(deployDir, ".."), dir);
    const objects = render(dir);
    const problems = [...(await checkSchemas(objects)), ...checkWorkloads(objects)];
    for (const { name, text } of configTexts(objects)) {
      const file = join(scratch, `${name}.yaml`);
      writeFileSync(file, text);
      try {
        // No SHARD_* from this shell: the file alone must be valid. The token variable is
        // set only when a required Secret sets it in the pod.
        const env = { ...process.env };
        delete env.SHARD_INDEX;
        delete env.SHARD_COUNT;
        const tokenEnv = parseConfigTokenEnv(text);
        if (tokenEnv) delete env[tokenEnv];
        if (tokenEnv && tokenEnvOf(objects, name) === tokenEnv) env[tokenEnv] = "token-from-the-required-secret";
        execFileSync(mdagg, ["--check-config", file], { stdio: ["ignore", "pipe", "pipe"], env });
      } catch (e) {
        problems.push(`ConfigMap/${name}: mdagg --check-config: ${(e.stderr || e.message).toString().trim()}`);
      }
    }
    if (problems.length) {
      failed++;
      console.log(`FAIL ${label} (${objects.length} objects)`);
      for (const p of problems) console.log(`  ${p}`);
    } else {
      passed++;
      console.log(`ok   ${label}: ${objects.map((o) => `${o.kind}/${o.metadata.name}`).join(", ")}`);
    }
  }
  // The Prometheus Operator objects, against the base's Service.
  const monitoring = render(join(deployDir, "monitoring"));
  const problems = [...(await checkSchemas(monitoring)), ...checkMonitoring(monitoring, render(join(deployDir, "base")))];
  if (problems.length) {
    failed++;
    console.log(`FAIL deploy/monitoring (${monitoring.length} objects)`);
    for (const p of problems) console.log(`  ${p}`);
  } else {
    passed++;
    console.log(`ok   deploy/monitoring: ${monitoring.map((o) => `${o.kind}/${o.metadata.name}`).join(", ")}`);
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
