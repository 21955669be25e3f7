#!/usr/bin/env node
// Installs the packages as someone outside this repository would: builds and packs every package
// whose package.json is not "private", installs the tarballs into a fresh project
// in the system temp directory (third-party dependencies from the registry, @vpc/* ones from the
// tarballs), then
//   - checks each tarball: built files, LICENSE, README, every file the README links to, the
//     publishing fields, and that internal dependencies are themselves public packages;
//   - runs each README example marked `<!-- pack-check: run -->` just above its fence, and
//     typechecks those marked `<!-- pack-check: typecheck -->` (they need QEMU, root or NPB);
//   - imports every export path (ESM), require()s it (CJS) and compares the two sets of names;
//   - typechecks the examples and both smoke files as a consumer would (TypeScript, nodenext,
//     strict; the .cts file resolves the "require" types, the .mts file the "import" ones).
// The temp project is removed on success, on failure and on Ctrl-C. Usage: node scripts/pack-check.mjs
import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const EXAMPLE_TIMEOUT_MS = 60_000;
const started = performance.now();
const phases = [];
const problems = [];

function phase(name, fn) {
  const t0 = performance.now();
  const result = fn();
  phases.push(`${name} ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return result;
}

/** Runs a command; on failure throws with its output, so the CI log shows what broke. */
function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 64 << 20, ...options });
  if (r.error !== undefined) throw new Error(`${cmd} ${args.join(" ")}: ${r.error.message}`);
  if (r.status !== 0) {
    const how = r.signal !== null ? `killed by ${r.signal}` : `exit ${r.status}`;
    throw new Error(`${cmd} ${args.join(" ")} (${how}, in ${options.cwd ?? ROOT}):\n${r.stdout}${r.stderr}`);
  }
  return r.stdout;
}

function publicPackages() {
  const out = [];
  for (const entry of readdirSync(join(ROOT, "packages")).sort()) {
    const file = join(ROOT, "packages", entry, "package.json");
    if (!existsSync(file)) continue;
    const manifest = JSON.parse(readFileSync(file, "utf8"));
    if (manifest.private !== true) out.push({ dir: join(ROOT, "packages", entry), manifest });
  }
  return out;
}

/** Export subpaths as import specifiers ("pkg", "pkg/testing"), without "./package.json". */
function exportSpecifiers(manifest) {
  return Object.keys(manifest.exports ?? { ".": null })
    .filter((key) => key !== "./package.json")
    .map((key) => (key === "." ? manifest.name : `${manifest.name}/${key.slice(2)}`));
}

/** Every file an exports entry points at, e.g. "dist/index.cjs". */
function exportTargets(exportsField) {
  if (typeof exportsField === "string") return [exportsField.replace(/^\.\//, "")];
  if (exportsField === null || typeof exportsField !== "object") return [];
  return Object.values(exportsField).flatMap(exportTargets);
}

function checkTarball(pkg, packed, publicNames) {
  const m = pkg.manifest;
  const files = new Set(packed.files.map((f) => f.path));
  const need = ["LICENSE", "README.md", ...exportTargets(m.exports)];
  if (m.bin !== undefined) need.push(...Object.values(m.bin).map((p) => p.replace(/^\.\//, "")));
  const readme = readFileSync(join(pkg.dir, "README.md"), "utf8");
  for (const [, target] of readme.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)) {
    if (!/^[a-z]+:/i.test(target)) need.push(target.replace(/^\.\//, ""));
  }
  for (const file of need) if (!files.has(file)) problems.push(`${m.name}: ${file} is not in the tarball`);
  if (m.license !== "MIT") problems.push(`${m.name}: license is ${m.license}, expected MIT`);
  if (typeof m.repository?.url !== "string") problems.push(`${m.name}: repository has no url`);
  if (m.name.startsWith("@") && m.publishConfig?.access !== "public") {
    problems.push(`${m.name}: a scoped package needs publishConfig.access "public"`);
  }
  if (m.scripts?.prepack === undefined)
    problems.push(`${m.name}: no prepack script (npm pack would ship no build)`);
  for (const dep of Object.keys(m.dependencies ?? {})) {
    if (dep.startsWith("@vpc/") && !publicNames.has(dep)) {
      problems.push(`${m.name}: depends on ${dep}, which is private (cannot be installed from the registry)`);
    }
  }
}

/** README fences preceded by `<!-- pack-check: run|typecheck -->`. */
function markedExamples(pkg) {
  const readme = readFileSync(join(pkg.dir, "README.md"), "utf8");
  const out = [];
  const marked = /<!-- pack-check: (run|typecheck) -->\s*\n```(ts|js)\n([\s\S]*?)\n```/g;
  for (const [, mode, lang, code] of readme.matchAll(marked)) {
    if (mode === "typecheck" && lang !== "ts") {
      problems.push(`${pkg.manifest.name}: README marks a js example for typecheck; only ts ones can be`);
    }
    out.push({ mode, lang, code });
  }
  return out;
}

function smokeFiles(packages) {
  const specs = packages.flatMap((pkg) => exportSpecifiers(pkg.manifest));
  const esm = [
    `import { createRequire } from "node:module";`,
    ...specs.map((s, i) => `import * as m${i} from "${s}";`),
    `const require = createRequire(import.meta.url);`,
    `const specs: [string, Record<string, unknown>][] = [${specs.map((s, i) => `["${s}", m${i}]`).join(", ")}];`,
    `const failures: string[] = [];`,
    `for (const [spec, esm] of specs) {`,
    `  try {`,
    `    const cjs = require(spec) as Record<string, unknown>;`,
    `    const names = Object.keys(esm).filter((k) => k !== "default").sort();`,
    `    const cjsNames = Object.keys(cjs).sort();`,
    `    if (names.length === 0) throw new Error("import gives no exports");`,
    `    if (names.join() !== cjsNames.join()) throw new Error(\`import gives [\${names}], require() gives [\${cjsNames}]\`);`,
    `    const differ = names.filter((n) => typeof esm[n] !== typeof cjs[n]);`,
    `    if (differ.length > 0) throw new Error(\`different kinds of value for \${differ}\`);`,
    `    console.log(\`\${spec}: \${names.length} exports, the same from import and require()\`);`,
    `  } catch (e) {`,
    `    failures.push(\`\${spec}: \${e instanceof Error ? e.message.split("\\n")[0] : e}\`);`,
    `  }`,
    `}`,
    `if (failures.length > 0) throw new Error(failures.join("\\n"));`,
  ];
  const cjs = [
    ...specs.map((s, i) => `import m${i} = require("${s}");`),
    `const loaded: [string, object][] = [${specs.map((s, i) => `["${s}", m${i}]`).join(", ")}];`,
    `for (const [spec, m] of loaded) if (Object.keys(m).length === 0) throw new Error(\`\${spec}: require() gives nothing\`);`,
    `console.log(\`require() from CommonJS: \${loaded.length} entry points\`);`,
  ];
  return { esm: `${esm.join("\n")}\n`, cjs: `${cjs.join("\n")}\n` };
}

function main() {
  const packages = publicPackages();
  const publicNames = new Set(packages.map((p) => p.manifest.name));
  const tmp = mkdtempSync(join(tmpdir(), "vpc-pack-check-"));
  if (!relative(ROOT, tmp).startsWith(".."))
    throw new Error(`temp dir ${tmp} is inside the workspace ${ROOT}`);
  const cleanup = () => rmSync(tmp, { recursive: true, force: true });
  process.on("exit", cleanup);
  for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => process.exit(130));

  const tarballs = join(tmp, "tarballs");
  mkdirSync(tarballs);
  // Each package's prepack runs this same turbo build (cached after `npm run build`); one call for
  // all of them instead of one per package, then pack without scripts.
  phase("build", () =>
    run("npx", [
      "turbo",
      "run",
      "build",
      "--output-logs=errors-only",
      ...packages.map((p) => `--filter=${p.manifest.name}`),
    ]),
  );
  const packed = phase("pack", () =>
    JSON.parse(
      run("npm", [
        "pack",
        "--json",
        "--ignore-scripts",
        "--loglevel=error",
        `--pack-destination=${tarballs}`,
        ...packages.flatMap((p) => ["-w", relative(ROOT, p.dir)]),
      ]),
    ),
  );
  const byName = new Map(packed.map((p) => [p.name, p]));
  for (const pkg of packages) checkTarball(pkg, byName.get(pkg.manifest.name), publicNames);
  // A tarball without its build would only fail later as "no declaration file": say so here.
  if (problems.length > 0) throw new Error(`tarballs:\n${problems.map((p) => `  ${p}`).join("\n")}`);

  const project = join(tmp, "project");
  mkdirSync(join(project, "examples"), { recursive: true });
  const local = Object.fromEntries(packed.map((p) => [p.name, `file:${join(tarballs, p.filename)}`]));
  writeFileSync(
    join(project, "package.json"),
    JSON.stringify({
      name: "vpc-pack-check",
      private: true,
      type: "module",
      dependencies: { ...local, "@types/node": "^20" },
      // Internal dependencies ask for @vpc/x@0.1.0; until those are on the registry they must come
      // from the tarballs packed above.
      overrides: local,
    }),
  );
  // --ignore-scripts: none of ours has install scripts, and ssh2's optional native build is slow.
  phase("install", () =>
    run(
      "npm",
      ["install", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"],
      {
        cwd: project,
      },
    ),
  );

  const toRun = [];
  for (const pkg of packages) {
    markedExamples(pkg).forEach((ex, i) => {
      const base = `${pkg.manifest.name.replace(/^@vpc\//, "")}-${i + 1}`;
      const file = `${base}.${ex.lang === "ts" ? "mts" : "mjs"}`;
      writeFileSync(join(project, "examples", file), `${ex.code}\n`);
      if (ex.mode === "run")
        toRun.push({ name: `${pkg.manifest.name} README example ${i + 1}`, file, lang: ex.lang });
      else
        console.log(`${pkg.manifest.name} README example ${i + 1}: typecheck only (needs a host resource)`);
    });
  }
  const smoke = smokeFiles(packages);
  writeFileSync(join(project, "smoke.mts"), smoke.esm);
  writeFileSync(join(project, "smoke.cts"), smoke.cjs);
  writeFileSync(
    join(project, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        module: "nodenext",
        moduleResolution: "nodenext",
        target: "es2022",
        strict: true,
        // As consumers usually have it: checking every .d.ts under node_modules (mostly @types/node)
        // tripled this step; a .d.ts naming a module that does not resolve still fails the smoke files.
        skipLibCheck: true,
        types: ["node"],
        outDir: "out",
        rootDir: ".",
      },
      include: ["smoke.mts", "smoke.cts", "examples/*.mts"],
    }),
  );
  phase("typecheck", () =>
    run(process.execPath, [join(ROOT, "node_modules/typescript/bin/tsc"), "-p", project]),
  );

  const env = { ...process.env };
  delete env.NODE_PATH;
  phase("run", () => {
    for (const file of ["out/smoke.mjs", "out/smoke.cjs"])
      process.stdout.write(run("node", [file], { cwd: project, env }));
    for (const ex of toRun) {
      const file =
        ex.lang === "ts" ? `out/examples/${ex.file.replace(/\.mts$/, ".mjs")}` : `examples/${ex.file}`;
      const output = run("node", [file], { cwd: project, env, timeout: EXAMPLE_TIMEOUT_MS });
      console.log(`${ex.name}: ran\n${output.replace(/^/gm, "  | ")}`);
    }
  });

  console.log("\npackage                     tarball   unpacked  files");
  for (const p of packed) {
    const kb = (n) => `${(n / 1024).toFixed(1)} KiB`.padStart(10);
    console.log(
      `${p.name.padEnd(26)} ${kb(p.size)} ${kb(p.unpackedSize)} ${String(p.entryCount).padStart(6)}`,
    );
  }
  console.log(`\n${phases.join(", ")}; total ${((performance.now() - started) / 1000).toFixed(1)} s`);
  if (problems.length > 0) {
    console.error(
      `\npack-check: ${problems.length} problem(s):\n${problems.map((p) => `  ${p}`).join("\n")}`,
    );
    process.exitCode = 1;
  } else {
    console.log(`pack-check: ${packages.length} packages installable and usable from a fresh project`);
  }
}

try {
  main();
} catch (e) {
  console.error(`pack-check failed: ${e instanceof Error ? e.message : e}`);
  console.error(`(${phases.join(", ")}; total ${((performance.now() - started) / 1000).toFixed(1)} s)`);
  process.exitCode = 1;
}
