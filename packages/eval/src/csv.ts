/** RFC 4180 CSV: fields with a comma, quote or line break are quoted, quotes doubled. */
export type CsvValue = string | number | boolean | null | undefined;

function field(v: CsvValue): string {
  if (v === null || v === undefined) return "";
  const s = String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function toCsv(header: readonly string[], rows: readonly (readonly CsvValue[])[]): string {
  return `${[header, ...rows].map((r) => r.map(field).join(",")).join("\r\n")}\r\n`;
}

/** CSV of objects, one column per key of `columns`. */
export function objectsToCsv<T extends object>(
  columns: readonly (keyof T & string)[],
  rows: readonly T[],
): string {
  return toCsv(
    columns,
    rows.map((r) => columns.map((c) => r[c] as CsvValue)),
  );
}
