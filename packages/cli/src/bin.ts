#!/usr/bin/env node
import { installSignalCleanup, main } from "./cli.js";
import { exitQuietlyOnClosedPipe } from "./closed-pipe.js";

exitQuietlyOnClosedPipe([process.stdout, process.stderr]);

const argv = process.argv.slice(2);
// `vpc eval` cleans up its current cell itself on the first Ctrl-C, the testbed daemon stops its
// VMs on the first SIGTERM/SIGINT; a second signal exits at once.
const signal = installSignalCleanup({
  graceful: argv[0] === "eval" || (argv[0] === "testbed" && argv[1] === "daemon"),
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
