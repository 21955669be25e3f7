import { QmpOverflowError } from "./errors.js";
import type { QmpEvent } from "./protocol/messages.js";

/** Event names to accept: one name, several, or "*" for all. */
export type EventNames = string | readonly string[];

export interface EventListenerOptions {
  /** Accept only these event names; all events when left out or "*". */
  readonly names?: EventNames;
  /** Accept only events for which this returns true (checked after `names`). */
  readonly filter?: (event: QmpEvent) => boolean;
  /**
   * How many accepted events may wait unread before the listener gives up with a
   * QmpOverflowError. Events are never dropped silently. Default 10 000.
   */
  readonly maxQueued?: number;
}

export function nameMatcher(names: EventNames | undefined): (name: string) => boolean {
  if (names === undefined || names === "*") return () => true;
  const set = new Set(typeof names === "string" ? [names] : names);
  if (set.has("*")) return () => true;
  return (name) => set.has(name);
}

type Waiter = { resolve: (r: IteratorResult<QmpEvent>) => void; reject: (e: Error) => void };

/**
 * One subscriber's view of the event stream, with its own FIFO queue: a slow reader never makes
 * another listener miss an event. Iterate it with `for await`, or call `next()`.
 *
 * Its lifetime is explicit. `close()` (or `break` out of `for await`, or `await using`) ends it
 * and unregisters it. When the connection goes away, queued events are still handed out, then
 * iteration ends (the client closed it) or throws the close cause (QEMU went away).
 *
 * ```ts
 * await using stops = qmp.events({ names: ["STOP"] });
 * await qmp.stop();
 * const { value } = await stops.next(); // value.event === "STOP"
 * ```
 */
export class QmpEventListener implements AsyncIterableIterator<QmpEvent>, AsyncDisposable {
  readonly maxQueued: number;
  private readonly acceptsName: (name: string) => boolean;
  private readonly predicate: ((event: QmpEvent) => boolean) | undefined;
  private readonly queue: QmpEvent[] = [];
  private readonly waiters: Waiter[] = [];
  /** Set once ended; `error` is what iteration throws after the queue drains (none: clean end). */
  private ended: { error: Error | undefined } | undefined;
  private readonly onClose: (listener: QmpEventListener) => void;

  /** @internal Made by QmpClient.events(); `onClose` unregisters it from the client. */
  constructor(options: EventListenerOptions, onClose: (listener: QmpEventListener) => void) {
    this.acceptsName = nameMatcher(options.names);
    this.predicate = options.filter;
    this.maxQueued = options.maxQueued ?? 10_000;
    this.onClose = onClose;
  }

  /** Whether this listener wants the event. */
  accepts(event: QmpEvent): boolean {
    return this.acceptsName(event.event) && (this.predicate === undefined || this.predicate(event));
  }

  /** Events accepted and not yet read. */
  get queued(): number {
    return this.queue.length;
  }

  /** True once the listener no longer receives events. */
  get closed(): boolean {
    return this.ended !== undefined;
  }

  /**
   * @internal Hands the listener an event if it accepts it. Called by the client for every event.
   * A predicate that throws ends this listener with that error instead of hurting the client.
   */
  deliver(event: QmpEvent): void {
    if (this.ended !== undefined) return;
    let wanted: boolean;
    try {
      wanted = this.accepts(event);
    } catch (err) {
      this.finish(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    if (!wanted) return;
    const waiter = this.waiters.shift();
    if (waiter !== undefined) {
      waiter.resolve({ value: event, done: false });
    } else if (this.queue.length >= this.maxQueued) {
      this.finish(new QmpOverflowError(this.maxQueued));
    } else {
      this.queue.push(event);
    }
  }

  /**
   * @internal Ends the listener (the client calls it when the connection ends): queued events
   * can still be read, then iteration ends or throws `error`.
   */
  finish(error?: Error): void {
    if (this.ended !== undefined) return;
    const waiters = this.waiters.splice(0);
    // A reader already waiting receives the close cause now; otherwise the next read gets it.
    this.ended = { error: waiters.length > 0 ? undefined : error };
    this.onClose(this);
    for (const waiter of waiters) {
      if (error === undefined) waiter.resolve({ value: undefined, done: true });
      else waiter.reject(error);
    }
  }

  /** Stops listening now and drops anything queued. */
  close(): void {
    this.queue.length = 0;
    this.finish();
  }

  next(): Promise<IteratorResult<QmpEvent>> {
    const event = this.queue.shift();
    if (event !== undefined) return Promise.resolve({ value: event, done: false });
    if (this.ended !== undefined) {
      const { error } = this.ended;
      // The close cause is thrown once; later calls just see the end.
      this.ended = { error: undefined };
      return error === undefined ? Promise.resolve({ value: undefined, done: true }) : Promise.reject(error);
    }
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  return(): Promise<IteratorResult<QmpEvent>> {
    this.close();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }
}
