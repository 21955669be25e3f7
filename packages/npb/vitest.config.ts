import { unitTestConfig } from "../../vitest.unit.ts";

// NPB class W runs are opt-in (*.w.test.ts), not unit tests.
export default unitTestConfig(["src/**/*.w.test.ts"]);
