/**
 * Listener-owned event queues (house style 5): every listener has its own queue and filter, is
 * async-iterable, and ends when closed or when the hub closes (never silently: the iterator
 * returns, and `closed` tells whether the hub went away).
 */

export interface EventListener<E> extends AsyncIterable<E> {
  /** Next event, or undefined once the listener or hub is closed and the queue is empty. */
  next(): Promise<E | undefined>;
  close(): void;
  [Symbol.asyncDispose](): Promise<void>;
}

interface Sub<E> {
  accept: (e: E) => boolean;
  queue: E[];
  wake: (() => void) | undefined;
  closed: boolean;
}

export class EventHub<E extends { type: string }> {
  readonly #subs = new Set<Sub<E>>();
  #closed = false;

  emit(event: E): void {
    for (const s of this.#subs) {
      if (!s.accept(event)) continue;
      s.queue.push(event);
      s.wake?.();
    }
  }

  listen(types?: readonly E["type"][], predicate?: (e: E) => boolean): EventListener<E> {
    const sub: Sub<E> = {
      accept: (e) =>
        (types === undefined || types.includes(e.type)) && (predicate === undefined || predicate(e)),
      queue: [],
      wake: undefined,
      closed: this.#closed,
    };
    this.#subs.add(sub);
    const close = () => {
      sub.closed = true;
      this.#subs.delete(sub);
      sub.wake?.();
    };
    const next = async (): Promise<E | undefined> => {
      for (;;) {
        const e = sub.queue.shift();
        if (e !== undefined) return e;
        if (sub.closed) return undefined;
        await new Promise<void>((resolve) => {
          sub.wake = resolve;
        });
        sub.wake = undefined;
      }
    };
    return {
      next,
      close,
      [Symbol.asyncDispose]: async () => close(),
      async *[Symbol.asyncIterator]() {
        for (let e = await next(); e !== undefined; e = await next()) yield e;
      },
    };
  }

  close(): void {
    this.#closed = true;
    for (const s of this.#subs) {
      s.closed = true;
      s.wake?.();
    }
    this.#subs.clear();
  }
}
