/** One argument for a POSIX shell command line: single-quoted, embedded quotes closed and escaped. */
export function shellQuote(s: string): string {
  return `'${s.replaceAll("'", "'\\''")}'`;
}
