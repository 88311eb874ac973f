// Not a benchmark: run.ts lists the `.ts` files of tools/bench itself, so shared code lives here.

/** One `--key=value` (or bare `--flag`) argument of `npm run bench -- <name> …`. */
export interface BenchArg {
  /** The argument as given, for error messages. */
  arg: string;
  /** Its name without the leading `--`. */
  key: string;
  /** What follows the first `=`, or '' for a bare flag. */
  value: string;
  /** The value as a positive integer; throws naming the flag when it is not one. */
  int(): number;
}

/**
 * Splits benchmark arguments into name and value, with the positive-integer check the benchmarks'
 * counts (epochs, samples, repeats) all need, so each benchmark only maps names to its options.
 */
export function parseBenchArgs(args: readonly string[]): BenchArg[] {
  return args.map((arg) => {
    const [key = '', value = ''] = arg.replace(/^--/, '').split('=', 2) as [string?, string?];
    return {
      arg,
      key,
      value,
      int: () => {
        const n = Number(value);
        if (!Number.isInteger(n) || n < 1) throw new Error(`--${key} needs a positive integer, got "${value}"`);
        return n;
      },
    };
  });
}
