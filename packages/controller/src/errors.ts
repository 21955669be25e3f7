/**
 * Error tree of @vpc/controller. Callers branch on `code` (or `isInstance`), never on message text.
 *
 *   ControllerError            base; `code`, optional `vmId`, `cause`
 *   ├─ ConfigError             invalid VmConfig; `field`
 *   ├─ GuestImageError         guest image missing or unreadable; `path`
 *   ├─ VmStateError            method called in the wrong state; `state`, `required`
 *   ├─ BootError               ready marker not seen (timeout, QEMU exit, guest panic, start failure); `reason`, `serialTail`, `stderrTail`
 *   ├─ QemuExitedError         QEMU exited while an operation waited on it; `exitCode`, `signal`, `stderrTail`
 *   ├─ GuestCommandError       a guest command exited non-zero (`Vm.run`); `command`, `exitCode`, `stdout`, `stderr`
 *   ├─ SshError                SSH connect or channel failure; `op`
 *   └─ CheckpointError         device-state save, checkpoint copy or restore failed; `op`, `path`
 */

const BRAND = Symbol.for("vpc.controller.error");

export type ControllerErrorCode =
  | "CONFIG_INVALID"
  | "GUEST_IMAGE"
  | "VM_STATE"
  | "BOOT_FAILED"
  | "QEMU_EXITED"
  | "GUEST_COMMAND_FAILED"
  | "SSH_FAILED"
  | "CHECKPOINT_FAILED";

export class ControllerError extends Error {
  readonly code: ControllerErrorCode;
  readonly vmId: string | undefined;
  readonly [BRAND] = true;

  constructor(code: ControllerErrorCode, message: string, options: { vmId?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ControllerError";
    this.code = code;
    this.vmId = options.vmId;
  }

  /** True for any error of this package, even from a second installed copy of it. */
  static isInstance(value: unknown): value is ControllerError {
    return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }
}

export class ConfigError extends ControllerError {
  readonly field: string;
  constructor(field: string, message: string) {
    super("CONFIG_INVALID", `invalid VM config: ${field}: ${message}`);
    this.name = "ConfigError";
    this.field = field;
  }
}

export class GuestImageError extends ControllerError {
  readonly path: string;
  constructor(path: string, message: string, cause?: unknown) {
    super("GUEST_IMAGE", `guest image ${path}: ${message}`, { cause });
    this.name = "GuestImageError";
    this.path = path;
  }
}

export class VmStateError extends ControllerError {
  readonly state: string;
  readonly required: readonly string[];
  constructor(vmId: string, state: string, required: readonly string[], op: string) {
    super("VM_STATE", `vm ${vmId}: cannot ${op} in state ${state} (needs ${required.join(" or ")})`, {
      vmId,
    });
    this.name = "VmStateError";
    this.state = state;
    this.required = required;
  }
}

export type BootFailure = "timeout" | "qemu-exited" | "guest-panic" | "start-failed";

export class BootError extends ControllerError {
  readonly reason: BootFailure;
  readonly serialTail: string;
  readonly stderrTail: string;
  constructor(
    vmId: string,
    reason: BootFailure,
    detail: string,
    tails: { serialTail: string; stderrTail: string },
    cause?: unknown,
  ) {
    super(
      "BOOT_FAILED",
      `vm ${vmId}: boot failed (${reason}): ${detail}\n--- serial console (tail) ---\n${tails.serialTail || "(empty)"}` +
        (tails.stderrTail ? `\n--- qemu stderr (tail) ---\n${tails.stderrTail}` : ""),
      { vmId, cause },
    );
    this.name = "BootError";
    this.reason = reason;
    this.serialTail = tails.serialTail;
    this.stderrTail = tails.stderrTail;
  }
}

export class QemuExitedError extends ControllerError {
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly stderrTail: string;
  constructor(vmId: string, exitCode: number | null, signal: string | null, stderrTail: string) {
    super(
      "QEMU_EXITED",
      `vm ${vmId}: qemu exited (code ${exitCode}, signal ${signal})${stderrTail ? `: ${stderrTail}` : ""}`,
      { vmId },
    );
    this.name = "QemuExitedError";
    this.exitCode = exitCode;
    this.signal = signal;
    this.stderrTail = stderrTail;
  }
}

export class GuestCommandError extends ControllerError {
  readonly command: string;
  readonly exitCode: number | null;
  readonly stdout: string;
  readonly stderr: string;
  constructor(
    vmId: string,
    command: string,
    result: { exitCode: number | null; stdout: string; stderr: string },
  ) {
    super(
      "GUEST_COMMAND_FAILED",
      `vm ${vmId}: guest command failed (exit ${result.exitCode}): ${command}${result.stderr ? `: ${result.stderr.trim()}` : ""}`,
      { vmId },
    );
    this.name = "GuestCommandError";
    this.command = command;
    this.exitCode = result.exitCode;
    this.stdout = result.stdout;
    this.stderr = result.stderr;
  }
}

export type SshOp = "connect" | "exec" | "read";

export class SshError extends ControllerError {
  readonly op: SshOp;
  constructor(vmId: string, op: SshOp, message: string, cause?: unknown) {
    super("SSH_FAILED", `vm ${vmId}: ssh ${op}: ${message}`, { vmId, cause });
    this.name = "SshError";
    this.op = op;
  }
}

export class CheckpointError extends ControllerError {
  readonly op: string;
  readonly path: string | undefined;
  constructor(op: string, message: string, options: { vmId?: string; path?: string; cause?: unknown } = {}) {
    super("CHECKPOINT_FAILED", `${op}: ${message}${options.path ? ` (${options.path})` : ""}`, options);
    this.name = "CheckpointError";
    this.op = op;
    this.path = options.path;
  }
}
