/**
 * tdcollect ps straight from BPF records: no Task record and no string per cell is made. On 10,000 tasks,
 * building Task records and strings cost more than the kernel's iteration, and a short-lived process runs most
 * of its rendering in V8's interpreter, before the JIT has compiled anything, where every call, branch and
 * allocation counts. So the column list is compiled once into the source of one function whose loop writes
 * each line's bytes into a buffer: numbers as ASCII digits, comm as its bytes, masks as hex, with the
 * widths, record words and alignments as constants. The generated source is made only of the fixed snippets
 * below and numbers from the column tables (never of user input; custom headers are written separately).
 * Where code generation is disabled (node --disallow-code-generation-from-strings), compileRecordColumns
 * returns undefined and ps renders decoded Task records instead.
 *
 * The output is byte for byte what renderPs (ps-columns.ts) writes for the decoded tasks; a test holds the
 * two equal for every column on a real iterator read.
 */
import { headerLine, policyName, type Column } from './ps-columns.js';
import {
  RAW_COMM_WORD, RAW_MASK_WORDS, RAW_NUMBERS, RAW_U32_WORDS, rawComm, rawNoNewPrivs, rawState, recPid, recTgid,
  type RawMaskField, type RawNumberField, type RecordView,
} from '../collector/sources/bpf/record.js';

type Reader = (v: RecordView, w: number) => number | undefined;
/** The generated renderer: writes rows[r0..r1) from buf[p] on, returns the new end. */
type Body = (v: RecordView, rows: readonly number[], r0: number, r1: number, buf: Buffer, p: number,
  read: readonly (Reader | undefined)[], text: readonly ((n: number) => string)[], help: typeof HELP) => number;

/** Columns compiled for renderRecords. */
export interface RecordColumns {
  readonly cols: readonly Column[];
  readonly body: Body;
  readonly read: readonly (Reader | undefined)[];
  readonly text: readonly ((n: number) => string)[];
  /** bytes one line can take at most */
  readonly lineMax: number;
}

const hex = (n: number): string => n.toString(16);

/** A cell of text s (UTF-8) at buf[p], padding written out: returns the new end. */
function textCell(buf: Buffer, p: number, s: string, width: number, right: boolean, pad: boolean): number {
  if (right) for (let k = width - s.length; k > 0; k--) buf[p++] = 0x20;
  p += buf.write(s, p, 'utf8');
  if (!right && pad) for (let k = width - s.length; k > 0; k--) buf[p++] = 0x20;
  return p;
}

/** A decimal cell of x (any integer |x| < 2^53, or undefined for '-'), exactly as String(x). */
function numberCell(buf: Buffer, p: number, x: number | undefined, width: number, right: boolean, pad: boolean): number {
  return textCell(buf, p, x === undefined ? '-' : String(x), width, right, pad);
}

/** What the generated code calls. */
const HELP = {
  HEX: Buffer.from('0123456789abcdef', 'latin1'),
  textCell, numberCell, rawState, rawComm, rawNoNewPrivs,
};

/*
 * The generated code writes into a buffer filled with spaces beforehand, so padding is a move of p, and
 * writes only a cell's characters. Snippets use the locals declared in compileRecordColumns.
 */

/** Source of a fixed-size ASCII cell of len bytes written by `put`, padded to the column's width. */
function fixedCell(c: Column, last: boolean, len: number, put: string): string {
  const fill = Math.max(0, c.width - len);
  const lead = c.right && fill ? `p += ${fill};\n` : '';
  const trail = !c.right && !last && fill ? `\np += ${fill};` : '';
  return `${lead}${put}${trail}`;
}

/** Source of 8 hex digits of the u32 at record word `word`. */
const hex32 = (word: number): string =>
  `x = u32[w + ${word}]; for (q = p + 7; q >= p; q--) { buf[q] = HEX[x & 15]; x >>>= 4; } p += 8;`;

/**
 * The source of one cell of column c (the k-th; reader: its field's RAW_NUMBERS reader, if any), or undefined
 * when the record does not hold it.
 */
function cellSource(c: Column, k: number, last: boolean, reader: Reader | undefined):
  { src: string; max: number } | undefined {
  const field = c.field;
  const u32Word = Object.hasOwn(RAW_U32_WORDS, field) ? RAW_U32_WORDS[field as RawNumberField] : undefined;
  const args = `${c.width}, ${c.right}, ${!(last && !c.right)}`;
  switch (c.kind) {
    case 'dec':
      if (u32Word !== undefined && c.right && c.width > 0) {
        // a u32 that fits the width: digits written backwards from the cell's end; wider ones take the slow path
        return {
          max: 10,
          src: `n = u32[w + ${u32Word}];
if (n < ${10 ** Math.min(c.width, 10)}) {
  q = p + ${c.width}; do { d = (n / 10) >>> 0; buf[--q] = 48 + n - d * 10; n = d; } while (n > 0); p += ${c.width};
} else p = numberCell(buf, p, n, ${args});`,
        };
      }
      if (!reader) return undefined;
      return { max: 21, src: `p = numberCell(buf, p, read[${k}](v, w), ${args});` };
    case 'hex8':
      if (u32Word === undefined) return undefined;
      return { max: 8, src: fixedCell(c, last, 8, hex32(u32Word)) };
    case 'hex':
    case 'cls':
      if (!reader) return undefined;
      return { max: 64, src: `x = read[${k}](v, w); p = textCell(buf, p, x === undefined ? '-' : text[${k}](x), ${args});` };
    case 'mask': {
      if (!Object.hasOwn(RAW_MASK_WORDS, field)) return undefined;
      const word = RAW_MASK_WORDS[field as RawMaskField];
      return { max: 16, src: fixedCell(c, last, 16, `${hex32(word + 1)}\n${hex32(word)}`) };
    }
    case 'state':
      if (field !== 'state') return undefined;
      return { max: 1, src: fixedCell(c, last, 1, 'buf[p++] = rawState(v, w).charCodeAt(0);') };
    case 'bool':
      if (field !== 'noNewPrivs') return undefined;
      return { max: 1, src: fixedCell(c, last, 1, 'buf[p++] = rawNoNewPrivs(v, w) ? 49 : 48;') };
    case 'text': {
      if (field !== 'comm') return undefined;
      // comm: when its 16 bytes are ASCII (one test on four words), copied up to the NUL in one loop; anything
      // else, or a right-aligned comm, is decoded exactly as the Task decoder does
      if (c.right) return { max: 48, src: `p = textCell(buf, p, rawComm(v, w), ${args});` };
      const trail = !last && c.width > 0 ? `\n  if (p - q < ${c.width}) p = q + ${c.width};` : '';
      return {
        max: 48,
        src: `x = w + ${RAW_COMM_WORD};
if (((u32[x] | u32[x + 1] | u32[x + 2] | u32[x + 3]) & 0x80808080) === 0) {
  from = x * 4; lim = from + 16; q = p;
  while (from < lim) { d = bytes[from++]; if (d === 0) break; buf[p++] = d; }${trail}
} else p = textCell(buf, p, rawComm(v, w), ${args});`,
      };
    }
    case 'groups':
      return undefined;
  }
}

/** Output is written in chunks of this size. */
const BUFFER_SIZE = 256 * 1024;

/**
 * Compile the columns; undefined when one needs more than the record holds (groups past 32 come from /proc),
 * or when this process may not generate code.
 */
export function compileRecordColumns(cols: readonly Column[]): RecordColumns | undefined {
  const read: (Reader | undefined)[] = [];
  const text: ((n: number) => string)[] = [];
  const cells: string[] = [];
  let lineMax = 1;
  for (let k = 0; k < cols.length; k++) {
    const c = cols[k];
    const reader = Object.hasOwn(RAW_NUMBERS, c.field) ? RAW_NUMBERS[c.field as RawNumberField] : undefined;
    const cell = cellSource(c, k, k === cols.length - 1, reader);
    if (!cell) return undefined;
    cells.push(`// column ${k}\n${cell.src}`);
    read.push(reader);
    text.push(c.kind === 'cls' ? policyName : hex);
    lineMax += Math.max(c.width, cell.max) + 1;
  }
  const src = `'use strict';
const { HEX, textCell, numberCell, rawState, rawComm, rawNoNewPrivs } = help;
const u32 = v.u32, bytes = v.bytes, start = v.start;
let n = 0, d = 0, q = 0, x = 0, from = 0, lim = 0;
for (let r = r0; r < r1; r++) {
const w = start[rows[r]];
${cells.join('\np++; // the separator\n')}
buf[p++] = 10;
}
return p;`;
  let body: Body;
  try {
    body = new Function('v', 'rows', 'r0', 'r1', 'buf', 'p', 'read', 'text', 'help', src) as Body;
  } catch (e) {
    if (e instanceof EvalError) return undefined;
    throw e;
  }
  return { cols, body, read, text, lineMax };
}

/**
 * Write the listing of the records rows (record indexes, in the order to list) through write(bytes, length),
 * in chunks of up to 256 KiB: the header line (unless disabled), then one line per record.
 */
export function renderRecords(v: RecordView, rows: readonly number[], rc: RecordColumns, headers: boolean,
  write: (bytes: Buffer, length: number) => void): void {
  const size = Math.max(BUFFER_SIZE, 2 * rc.lineMax);
  const buf = Buffer.alloc(size, 0x20);
  let p = 0;
  if (headers) {
    const h = Buffer.from(headerLine(rc.cols), 'utf8');
    if (h.length > size - rc.lineMax) write(h, h.length);
    else p = h.copy(buf, 0);
  }
  let r = 0;
  while (r < rows.length) {
    const r1 = Math.min(rows.length, r + Math.floor((size - p) / rc.lineMax));
    if (r1 === r) { // full
      write(buf, p);
      buf.fill(0x20, 0, p);
      p = 0;
      continue;
    }
    p = rc.body(v, rows, r, r1, buf, p, rc.read, rc.text, HELP);
    r = r1;
  }
  if (p > 0) write(buf, p);
}

/** Record indexes in the order sortTasks gives their tasks: by process, leader first, then by thread id. */
export function sortRecords(v: RecordView, rows: number[]): number[] {
  const key = (i: number) => {
    const tgid = recTgid(v, i);
    const pid = recPid(v, i);
    return tgid * 4_194_304 + (pid === tgid ? 0 : pid);
  };
  // the iterator's order usually is the listing's (always without threads): sort only when it is not
  for (let k = 1; k < rows.length; k++) {
    if (key(rows[k - 1]) > key(rows[k])) return rows.sort((a, b) => key(a) - key(b));
  }
  return rows;
}
