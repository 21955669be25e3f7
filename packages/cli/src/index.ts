export { EXIT_FAILED, EXIT_OK, EXIT_USAGE, main } from "./cli.js";
export { type DemoOptions, type DemoResult, runDemo } from "./demo.js";
