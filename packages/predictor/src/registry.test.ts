import { describe, expect, it } from "vitest";
import { PredictorError } from "./errors.js";
import { DEFAULT_STRATEGY_SPECS, parseStrategy, STRATEGY_KINDS } from "./registry.js";

function codeOf(spec: string): [string, string | undefined] {
  try {
    parseStrategy(spec);
  } catch (e) {
    if (PredictorError.isInstance(e)) return [e.code, e.param];
    throw e;
  }
  return ["ok", undefined];
}

describe("parseStrategy", () => {
  it("builds each kind with defaults and canonical specs that parse back to themselves", () => {
    for (const spec of [
      ...DEFAULT_STRATEGY_SPECS,
      "k-of-n:n=8,k=3",
      "early-writers:windowMs=50,m=3",
      "cost-aware(cost-aware(last)):budgetUs=10",
    ]) {
      const s = parseStrategy(spec);
      expect(parseStrategy(s.spec).spec).toBe(s.spec);
    }
    expect(parseStrategy(" k-of-n:k=3 ").spec).toBe("k-of-n:k=3,n=4");
    expect(parseStrategy("k-of-n:n=8,k=3").depth).toBe(8);
    expect(parseStrategy("cost-aware(recency:n=6):copyUs=2").spec).toBe(
      "cost-aware(recency:decay=0.7,threshold=1.2,n=6):budgetUs=5000,copyUs=2,faultUs=16",
    );
    expect(STRATEGY_KINDS.map((k) => k.kind)).toEqual([
      "last",
      "k-of-n",
      "early-writers",
      "recency",
      "cost-aware",
    ]);
  });

  it("rejects bad specs with a code and the parameter at fault", () => {
    expect(codeOf("nope")).toEqual(["UNKNOWN_STRATEGY", undefined]);
    expect(codeOf("")).toEqual(["BAD_SPEC", undefined]);
    expect(codeOf("k-of-n:")).toEqual(["BAD_SPEC", undefined]);
    expect(codeOf("k-of-n;k=2")).toEqual(["BAD_SPEC", undefined]);
    expect(codeOf("last(k-of-n)")).toEqual(["BAD_SPEC", undefined]);
    expect(codeOf("cost-aware")).toEqual(["BAD_SPEC", undefined]);
    expect(codeOf("cost-aware(last")).toEqual(["BAD_SPEC", undefined]);
    expect(codeOf("cost-aware(nope)")).toEqual(["UNKNOWN_STRATEGY", undefined]);
    expect(codeOf("k-of-n:j=2")).toEqual(["BAD_PARAM", "j"]);
    expect(codeOf("k-of-n:k")).toEqual(["BAD_PARAM", "k"]);
    expect(codeOf("k-of-n:k=two")).toEqual(["BAD_PARAM", "k"]);
    expect(codeOf("k-of-n:k=1.5")).toEqual(["BAD_PARAM", "k"]);
    expect(codeOf("k-of-n:k=0")).toEqual(["BAD_PARAM", "k"]);
    expect(codeOf("k-of-n:k=2,k=3")).toEqual(["BAD_PARAM", "k"]);
    expect(codeOf("k-of-n:k=5,n=4")).toEqual(["BAD_PARAM", "k"]);
    expect(codeOf("recency:decay=0")).toEqual(["BAD_PARAM", "decay"]);
    expect(codeOf("early-writers:fraction=0.2,windowMs=3")).toEqual(["BAD_PARAM", "windowMs"]);
    expect(codeOf("early-writers:minHits=3,m=2")).toEqual(["BAD_PARAM", "minHits"]);
    expect(codeOf("last:x=1")).toEqual(["BAD_PARAM", "x"]);
  });
});
