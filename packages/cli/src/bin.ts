#!/usr/bin/env node
import { installSignalCleanup, main } from "./cli.js";

const argv = process.argv.slice(2);
// `vpc eval` cleans up its current cell itself on the first Ctrl-C; a second one exits at once.
const signal = installSignalCleanup({
  graceful: argv[0] === "eval",
  notify: (text) => process.stderr.write(text),
});
const code = await main(
  argv,
  {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
  },
  { signal },
);
process.exitCode = signal.aborted ? 130 : code;
