#!/usr/bin/env node
import { installSignalCleanup, main } from "./cli.js";

installSignalCleanup();
const code = await main(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
});
process.exitCode = code;
