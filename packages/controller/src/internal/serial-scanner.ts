/**
 * Scans a guest serial console stream, chunk by chunk, for the ready marker line and for
 * a kernel panic or a boot failure the guest reports itself (`VPC-GUEST-FAILED …`, from the
 * image's boot script), keeping the last lines for error messages. Pure: no I/O, no timers.
 */
export interface ScanResult {
  /** The full line that starts with the marker, once seen. */
  readonly readyLine: string | undefined;
  /** The first kernel panic or guest failure line, once seen. */
  readonly panicLine: string | undefined;
}

const PANIC = "Kernel panic - not syncing";
const GUEST_FAILED = "VPC-GUEST-FAILED";

export class SerialScanner implements ScanResult {
  readyLine: string | undefined;
  panicLine: string | undefined;
  private partial = "";
  private readonly lines: string[] = [];

  constructor(
    private readonly marker: string,
    private readonly tailLines = 40,
  ) {
    if (marker.length === 0) throw new RangeError("marker must not be empty");
  }

  /** Feeds the next chunk; returns true once a complete line starting with the marker has been seen. */
  push(chunk: string): boolean {
    const text = this.partial + chunk;
    const parts = text.split("\n");
    this.partial = parts.pop() ?? "";
    for (const raw of parts) this.line(raw);
    return this.readyLine !== undefined;
  }

  /** The last lines seen (including an unterminated one), for error reports. */
  tail(): string {
    const lines = this.partial ? [...this.lines, stripCr(this.partial)] : this.lines;
    return lines.slice(-this.tailLines).join("\n");
  }

  private line(raw: string): void {
    const line = stripCr(raw);
    this.lines.push(line);
    if (this.lines.length > this.tailLines) this.lines.shift();
    if (this.readyLine === undefined && line.startsWith(this.marker)) this.readyLine = line;
    if (this.panicLine === undefined && (line.includes(PANIC) || line.startsWith(GUEST_FAILED)))
      this.panicLine = line;
  }
}

function stripCr(line: string): string {
  return line.endsWith("\r") ? line.slice(0, -1) : line;
}
