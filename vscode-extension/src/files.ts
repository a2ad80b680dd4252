/** File checks that need Node but not VS Code. */

import * as fs from "fs";

/** The first 16 bytes of every SQLite 3 database file. */
export const SQLITE_HEADER = Buffer.from("SQLite format 3\0", "latin1");

/** Whether a file starts with the SQLite header (what a recording database is, short of asking opreplay). */
export function hasSqliteHeader(file: string): boolean {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, "r");
    const buffer = Buffer.alloc(SQLITE_HEADER.length);
    const read = fs.readSync(fd, buffer, 0, buffer.length, 0);
    return read === SQLITE_HEADER.length && buffer.equals(SQLITE_HEADER);
  } catch {
    return false;
  } finally {
    if (fd !== undefined) {
      fs.closeSync(fd);
    }
  }
}

export function fileExists(file: string): boolean {
  try {
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}
