// The one splice (assembly/util/splice.ts): every body edit the plugin makes goes through it. Checked
// against a plain string oracle for every way the source can be split into the two pieces a stream
// rewrite sees (bytes held from the previous chunk ++ the new chunk), and for every output limit.
import { Edit, MemorySink, Splice } from "../../assembly/util/splice";
import { utf8 } from "./helpers";

// The edited text, built the obvious way: edits in order, each replacing [start, end) of `src`.
function oracle(src: string, edits: Array<Edit>, end: i32): string {
  let out = "";
  let from = 0;
  for (let i = 0; i < edits.length; i++) {
    const e = edits[i];
    if (e.start > end) break;
    out += src.substring(from, e.start) + e.text;
    from = e.end;
  }
  if (from < end) out += src.substring(from, end);
  return out;
}

// Source split at `at` into two buffers, written up to `end` into memory.
function spliced(s: Splice, src: string, at: i32, end: i32, size: i32): string {
  const a = utf8(src.substring(0, at));
  const b = utf8(src.substring(at));
  const sink = new MemorySink(size);
  s.writeTo(sink, changetype<usize>(a), a.byteLength, changetype<usize>(b), b.byteLength, end);
  return String.UTF8.decode(sink.out);
}

function splice(edits: Array<Edit>): Splice {
  const s = new Splice();
  for (let i = 0; i < edits.length; i++) s.add(edits[i]);
  return s;
}

const SOURCE = '{"model":"qwen","stream":true,"messages":[]}';

function cases(): Array<Array<Edit>> {
  return [
    [],
    [new Edit(9, 15, '"gemma-2-2b"')], // replace the model
    [new Edit(1, 1, '"stream_options":{"include_usage":true},')], // insert at the root
    [new Edit(0, SOURCE.length, "")], // delete everything
    [new Edit(1, 1, '"model":"m",'), new Edit(9, 15, '"x"'), new Edit(41, 43, "[1]")],
    [new Edit(16, 30, ""), new Edit(30, 30, '"stream":false')], // delete, then insert where it ended
  ];
}

describe("Splice", () => {
  it("matches the oracle at every split of the source and every output limit", () => {
    const all = cases();
    for (let c = 0; c < all.length; c++) {
      const edits = all[c];
      const s = splice(edits);
      const whole = oracle(SOURCE, s.edits, SOURCE.length);
      expect<i32>(s.resultLength(SOURCE.length)).toBe(whole.length, "resultLength, case " + c.toString());
      for (let at = 0; at <= SOURCE.length; at++) {
        for (let end = 0; end <= SOURCE.length; end++) {
          const want = oracle(SOURCE, s.edits, end);
          expect<string>(spliced(s, SOURCE, at, end, want.length)).toBe(
            want,
            "case " + c.toString() + ", split " + at.toString() + ", end " + end.toString(),
          );
        }
      }
    }
  });

  it("keeps edits in source order whatever order they are added in, equal starts in insertion order", () => {
    const s = new Splice();
    s.add(new Edit(20, 25, "c"));
    s.add(new Edit(1, 1, "a"));
    s.add(new Edit(1, 1, "b"));
    s.add(new Edit(9, 12, "x"));
    const order = new Array<string>();
    for (let i = 0; i < s.edits.length; i++) order.push(s.edits[i].text);
    expect<string>(order.join("")).toBe("abxc");
  });

  it("apply builds the edited copy of a one-piece source; multi-byte text is counted in bytes", () => {
    const src = utf8(SOURCE);
    const s = splice([new Edit(9, 15, '"通义千问"')]);
    const out = s.apply(changetype<usize>(src), src.byteLength);
    expect<i32>(out.byteLength).toBe(s.resultLength(src.byteLength));
    expect<string>(String.UTF8.decode(out)).toBe('{"model":"通义千问","stream":true,"messages":[]}');
    expect<bool>(splice([]).isEmpty).toBe(true);
  });
});
