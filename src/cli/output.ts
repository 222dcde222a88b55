import { InvalidArgumentError } from 'commander';

/** Prints one line for an error and exits non-zero: what a CLI user (or script) wants. */
export function fail(e: unknown): never {
  const message = e instanceof Error ? e.message : String(e);
  process.stderr.write(`versa: error: ${message.split('\n')[0]}\n`);
  process.exit(1);
}

export function warn(message: string): void {
  process.stderr.write(`versa: warning: ${message}\n`);
}

/** Option parsers that turn bad values into commander's one-line errors. */
export const parse = {
  int(min = 0) {
    return (value: string): number => {
      const n = Number(value);
      if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min)
        throw new InvalidArgumentError(`expected an integer >= ${min}`);
      return n;
    };
  },
  number(min = -Infinity, max = Infinity) {
    return (value: string): number => {
      const n = Number(value);
      if (value.trim() === '' || !Number.isFinite(n) || n < min || n > max)
        throw new InvalidArgumentError(`expected a number in [${min}, ${max}]`);
      return n;
    };
  },
  ids(value: string): number[] {
    const ids = value.split(',').map((s) => s.trim());
    if (!ids.length || ids.some((s) => !/^\d+$/.test(s)))
      throw new InvalidArgumentError('expected comma-separated token ids, e.g. 1,2,3');
    return ids.map(Number);
  },
  adapterKinds(value: string): Array<'vlm' | 'lora'> {
    if (value === 'none') return [];
    const kinds = value.split(',').map((k) => k.trim());
    if (!kinds.every((k) => k === 'vlm' || k === 'lora'))
      throw new InvalidArgumentError('expected vlm, lora, vlm,lora or none');
    return [...new Set(kinds)] as Array<'vlm' | 'lora'>;
  },
  collect(value: string, previous: string[] = []): string[] {
    return [...previous, value];
  },
};
