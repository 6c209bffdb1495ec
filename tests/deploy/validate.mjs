// Renders deploy/base and every deploy/overlays/* with kustomize, validates each object
// against the Kubernetes schemas, checks mdagg's pod rules (grace budget below the pod's
// termination grace period, probes on the ops endpoints, locked-down security context,
// SHARD_COUNT = replicas) and runs `mdagg --check-config` on the config each render mounts.
// Usage: MDAGG_BIN=build/mdagg node validate.mjs     (exit 0: all good, 1: problems listed)
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { checkSchemas, checkWorkloads, configTexts, deployDir, render } from "./checks.mjs";

const mdagg = process.env.MDAGG_BIN;
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
        // No SHARD_* from this shell: the file alone must be valid.
        const env = { ...process.env };
        delete env.SHARD_INDEX;
        delete env.SHARD_COUNT;
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
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
