import { unitTestConfig } from "../../vitest.unit.ts";

export default unitTestConfig();
