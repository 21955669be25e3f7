import { appendFile, mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { writeFileDurable } from "@vpc/controller";
import { EvaluationError } from "./errors.js";
import {
  type Cell,
  type CellStatus,
  cellId,
  parseCellStatus,
  parseRecordLine,
  parseRunInfo,
  type ResultRecord,
  type RunInfo,
} from "./format.js";

export const RUN_FILE = "run.json";
export const CELLS_DIR = "cells";
export const SUMMARY_DIR = "summary";

export function recordsPath(dir: string, id: string): string {
  return join(dir, CELLS_DIR, `${id}.jsonl`);
}

export function statusPath(dir: string, id: string): string {
  return join(dir, CELLS_DIR, `${id}.status.json`);
}

/** One cell as read back: its status and its records. */
export interface CellResult {
  readonly id: string;
  readonly status: CellStatus;
  readonly records: readonly ResultRecord[];
}

export interface Results {
  readonly dir: string;
  readonly run: RunInfo;
  /** Cells with a status file (done or failed), sorted by id. */
  readonly cells: readonly CellResult[];
}

/** A reader never sees half a file, and a crash keeps the old one or the new one. */
export function writeFileAtomic(path: string, text: string): Promise<void> {
  return writeFileDurable(path, text);
}

async function readText(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") {
      throw new EvaluationError("RESULTS_MISSING", `${path}: ${what} is missing`, { path, cause: e });
    }
    throw new EvaluationError("RESULTS_CORRUPT", `${path}: cannot read ${what}: ${(e as Error).message}`, {
      path,
      cause: e,
    });
  }
}

export async function readRunInfo(dir: string): Promise<RunInfo> {
  const path = join(dir, RUN_FILE);
  return parseRunInfo(await readText(path, "the run description (run.json)"), path);
}

export async function writeRunInfo(dir: string, info: RunInfo): Promise<void> {
  await mkdir(join(dir, CELLS_DIR), { recursive: true });
  await writeFileAtomic(join(dir, RUN_FILE), `${JSON.stringify(info, null, 2)}\n`);
}

/** Parses a cell's JSON lines; a blank last line is the normal end, any other blank line is corrupt. */
export function parseRecords(text: string, path: string): ResultRecord[] {
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  return lines.map((l, i) => parseRecordLine(l, path, i + 1));
}

export async function readCellStatus(dir: string, id: string): Promise<CellStatus | undefined> {
  const path = statusPath(dir, id);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
  return parseCellStatus(text, path);
}

export async function readResults(dir: string): Promise<Results> {
  const run = await readRunInfo(dir);
  const cellsDir = join(dir, CELLS_DIR);
  let names: string[];
  try {
    names = await readdir(cellsDir);
  } catch (e) {
    throw new EvaluationError("RESULTS_MISSING", `${cellsDir}: the cells directory is missing`, {
      path: cellsDir,
      cause: e,
    });
  }
  const cells: CellResult[] = [];
  for (const name of names.filter((n) => n.endsWith(".status.json")).sort()) {
    const id = name.slice(0, -".status.json".length);
    const sPath = join(cellsDir, name);
    const status = parseCellStatus(await readText(sPath, "a cell status file"), sPath);
    if (status.id !== id) {
      throw new EvaluationError("RESULTS_CORRUPT", `${sPath}: holds cell ${status.id}, not ${id}`, {
        path: sPath,
      });
    }
    const rPath = recordsPath(dir, id);
    const records = parseRecords(await readText(rPath, "the cell's records file"), rPath);
    if (records.length !== status.records) {
      throw new EvaluationError(
        "RESULTS_CORRUPT",
        `${rPath}: has ${records.length} records but its status file says ${status.records} (truncated or appended to?)`,
        { path: rPath },
      );
    }
    cells.push({ id, status, records });
  }
  return { dir, run, cells };
}

/** Appends records of one running cell; starts the records file empty (a retried cell starts over). */
export class CellWriter {
  readonly id: string;
  readonly path: string;
  #count = 0;

  private constructor(dir: string, cell: Cell) {
    this.id = cellId(cell);
    this.path = recordsPath(dir, this.id);
  }

  static async begin(dir: string, cell: Cell): Promise<CellWriter> {
    const w = new CellWriter(dir, cell);
    await rm(statusPath(dir, w.id), { force: true });
    await writeFile(w.path, "");
    return w;
  }

  get count(): number {
    return this.#count;
  }

  async append(record: ResultRecord): Promise<void> {
    await appendFile(this.path, `${JSON.stringify(record)}\n`);
    this.#count++;
  }
}

export async function writeCellStatus(dir: string, status: CellStatus): Promise<void> {
  await writeFileAtomic(statusPath(dir, status.id), `${JSON.stringify(status, null, 2)}\n`);
}
