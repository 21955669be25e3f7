/**
 * One kind of host (`netns`, `qemu`, `ssh`) as `testbedUp`, `testbedDown`, `status` and leak
 * checks see it. `hosts.ts` loops over the drivers; everything kind-specific is behind this.
 */
import type { HostKind } from "@vpc/cluster";
import type { TestbedHost, TestbedHostSpec, TestbedState, TestbedUpOptions } from "../state.js";

/** How a driver's `down` removes things and reports what it removed. */
export interface Removal {
  /** Runs one step, recording `what` as removed, or its error (best effort: later steps still run). */
  step(what: string, f: () => Promise<unknown>): Promise<void>;
  /** Records something that went without a step of its own. */
  removed(what: string): void;
}

/** What every host of a testbed gets from `up`. */
export interface StartContext {
  readonly state: TestbedState;
  readonly options: TestbedUpOptions;
  /** The testbed's client public key (an `ssh-ed25519 …` line) and the file holding it. */
  readonly publicKey: string;
  readonly publicKeyFile: string;
  /** The dropbear host key of emulated hosts. */
  readonly dropbearHostKey: string;
  /** Persists `state`, one writer at a time (hosts may start in parallel). */
  readonly save: () => Promise<void>;
}

/** The hosts of one kind, checked and ready to be made. */
export interface ProbedHosts {
  /** Records each host in the state, then makes it (a crash half-way leaves it to `down`). */
  start(ctx: StartContext): Promise<void>;
  /** Releases what the probe holds open (connections), whether `start` ran or not. */
  release(): void;
}

export interface HostDriver {
  readonly kind: HostKind;
  /** Whether its hosts sit on the testbed's fabric bridge on this machine. */
  readonly onBridge: boolean;
  /**
   * Checks the hosts of this kind before anything of the testbed exists, so that a failure
   * leaves nothing to undo.
   */
  probe(specs: readonly TestbedHostSpec[], options: TestbedUpOptions): Promise<ProbedHosts>;
  /** What is wrong with a host `up` made (empty: healthy). */
  problems(state: TestbedState, h: TestbedHost): Promise<string[]>;
  /** What of a host still exists (after `down`: nothing). */
  leftovers(state: TestbedState, h: TestbedHost): Promise<string[]>;
  /** Removes a host by its record. */
  down(state: TestbedState, h: TestbedHost, r: Removal): Promise<void>;
}
