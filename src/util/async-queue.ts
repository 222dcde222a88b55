/** A push-to-pull bridge: producers push values (or an end / an error), one consumer iterates. */
export class AsyncQueue<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private waiter?: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void };
  private ended = false;
  private failure?: unknown;

  push(value: T): void {
    if (this.ended) return;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w.resolve({ value, done: false });
    } else this.items.push(value);
  }

  end(error?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.failure = error;
    const w = this.waiter;
    this.waiter = undefined;
    if (w && error === undefined) w.resolve({ value: undefined, done: true });
    else if (w) w.reject(error);
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        if (this.items.length) return Promise.resolve({ value: this.items.shift()!, done: false });
        if (this.ended)
          return this.failure === undefined
            ? Promise.resolve({ value: undefined, done: true })
            : Promise.reject(this.failure);
        return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
      },
      return: () => {
        this.items.length = 0;
        this.ended = true;
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}
