#!/usr/bin/env node
import { runPredictorCli } from "./cli.js";

process.exitCode = await runPredictorCli(process.argv.slice(2));
