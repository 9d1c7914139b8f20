// A deterministic, single-file ustar archive, and its gzip.
//
// Format facts: POSIX.1-1988 ustar (pax "ustar Interchange Format"): 512-byte header blocks,
// numeric fields as NUL-terminated octal, checksum = byte sum of the header with the checksum
// field read as eight spaces, data padded to 512, archive ended by two zero blocks.
// Everything that could vary between machines (mtime, owner, mode, names) is fixed, so the same
// file bytes always give the same archive bytes.

import { gzipSync, constants as zlibConstants } from "node:zlib";

const BLOCK = 512;
const NAME_MAX = 100;
/** 11 octal digits: the largest size a plain ustar header can carry (8 GiB - 1). */
const SIZE_MAX = 0o77777777777;
/** gzip header byte 9 (OS). zlib fills it from its build platform; pin it to "Unix". */
const GZIP_OS_OFFSET = 9;
const GZIP_OS_UNIX = 3;

export const TAR_FILE_MODE = 0o644;

export interface TarEntry {
  /** Path inside the archive, relative, ASCII, at most 100 bytes (no prefix field used). */
  name: string;
  data: Uint8Array;
  /** Seconds since the epoch; 0 unless SOURCE_DATE_EPOCH asks otherwise. */
  mtime: number;
}

function writeString(header: Buffer, offset: number, length: number, value: string): void {
  const bytes = Buffer.from(value, "ascii");
  if (bytes.length > length) {
    throw new Error(`tar: field "${value}" longer than ${length} bytes`);
  }
  bytes.copy(header, offset);
}

/** Octal, zero-padded to length-1 digits, NUL-terminated. */
function writeOctal(header: Buffer, offset: number, length: number, value: number): void {
  const digits = value.toString(8).padStart(length - 1, "0");
  if (digits.length > length - 1) {
    throw new Error(`tar: value ${value} does not fit in ${length - 1} octal digits`);
  }
  writeString(header, offset, length, digits + "\0");
}

function checkName(name: string): void {
  if (name.length === 0 || Buffer.byteLength(name, "utf8") > NAME_MAX) {
    throw new Error(`tar: entry name must be 1..${NAME_MAX} bytes: "${name}"`);
  }
  if (!/^[\x21-\x7e]+$/.test(name) || name.startsWith("/") || name.split("/").includes("..")) {
    throw new Error(`tar: entry name must be a relative printable ASCII path: "${name}"`);
  }
}

export function tarHeader(entry: TarEntry): Buffer {
  checkName(entry.name);
  if (entry.data.length > SIZE_MAX) {
    throw new Error(`tar: ${entry.name} is too large for a ustar header (${entry.data.length} bytes)`);
  }
  if (!Number.isInteger(entry.mtime) || entry.mtime < 0) {
    throw new Error(`tar: mtime must be a non-negative integer, got ${entry.mtime}`);
  }
  const h = Buffer.alloc(BLOCK, 0);
  writeString(h, 0, 100, entry.name); // name
  writeOctal(h, 100, 8, TAR_FILE_MODE); // mode
  writeOctal(h, 108, 8, 0); // uid
  writeOctal(h, 116, 8, 0); // gid
  writeOctal(h, 124, 12, entry.data.length); // size
  writeOctal(h, 136, 12, entry.mtime); // mtime
  h.fill(0x20, 148, 156); // checksum placeholder: eight spaces
  writeString(h, 156, 1, "0"); // typeflag: regular file
  // linkname (157..256) stays empty
  writeString(h, 257, 6, "ustar\0"); // magic
  writeString(h, 263, 2, "00"); // version
  // uname, gname left empty: owners are the numeric 0/0 above
  writeOctal(h, 329, 8, 0); // devmajor
  writeOctal(h, 337, 8, 0); // devminor
  let sum = 0;
  for (const byte of h) {
    sum += byte;
  }
  // Six octal digits, NUL, space: the form every tar writes and reads.
  writeString(h, 148, 8, sum.toString(8).padStart(6, "0") + "\0 ");
  return h;
}

/** A tar archive holding the given regular files, in order. */
export function tarFiles(entries: readonly TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    parts.push(tarHeader(entry));
    parts.push(Buffer.from(entry.data.buffer, entry.data.byteOffset, entry.data.length));
    const pad = (BLOCK - (entry.data.length % BLOCK)) % BLOCK;
    if (pad > 0) {
      parts.push(Buffer.alloc(pad, 0));
    }
  }
  parts.push(Buffer.alloc(2 * BLOCK, 0));
  return Buffer.concat(parts);
}

/**
 * gzip with fixed settings. zlib's own header already has mtime 0 and no file name; only the
 * OS byte depends on how the zlib was built, so it is pinned. Same Node (zlib) version and same
 * input give the same bytes.
 */
export function gzipDeterministic(data: Uint8Array): Buffer {
  const gz = gzipSync(data, { level: zlibConstants.Z_BEST_COMPRESSION, memLevel: 9, strategy: zlibConstants.Z_DEFAULT_STRATEGY });
  gz[GZIP_OS_OFFSET] = GZIP_OS_UNIX;
  return gz;
}

/** SOURCE_DATE_EPOCH (reproducible-builds.org) if set and valid, else 0. */
export function sourceDateEpoch(env: NodeJS.ProcessEnv): number {
  const raw = env["SOURCE_DATE_EPOCH"];
  if (raw === undefined || raw === "") {
    return 0;
  }
  if (!/^[0-9]+$/.test(raw)) {
    throw new Error(`SOURCE_DATE_EPOCH must be a whole number of seconds, got "${raw}"`);
  }
  return Number(raw);
}
