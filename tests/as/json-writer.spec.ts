// JSON text the plugin writes (assembly/json/writer.ts): every string comes out as a valid JSON string
// that our own scanner accepts and decodes back to the same text.
import { decodeString } from "../../assembly/json/reader";
import { jsonString, jsonStringArray } from "../../assembly/json/writer";
import { NO_KEYS, errorName, hold, scanBuf, utf8 } from "./helpers";

class WriteCase {
  constructor(
    public text: string,
    public json: string,
  ) {}
}

// jsonString(s), encoded as the plugin sends it, must scan as one valid string and decode back to s.
function roundTrips(s: string): void {
  const buf = utf8(jsonString(s));
  const scan = scanBuf(buf, NO_KEYS);
  expect<string>(errorName(scan.error)).toBe("Ok", jsonString(s));
  expect<string | null>(decodeString(hold(buf), 0, buf.byteLength, buf.byteLength)).toBe(s, jsonString(s));
}

describe("jsonString", () => {
  it("quotes text and escapes quotes, backslashes and control characters", () => {
    const cases: Array<WriteCase> = [
      new WriteCase("", '""'),
      new WriteCase("qwen2-1-5b", '"qwen2-1-5b"'),
      new WriteCase('a"b', '"a\\"b"'),
      new WriteCase("a\\b", '"a\\\\b"'),
      new WriteCase("\n\r\t", '"\\n\\r\\t"'),
      new WriteCase("\0\b\f\u001f", '"\\u0000\\u0008\\u000c\\u001f"'),
      new WriteCase("/ é 中 😀 \u007f", '"/ é 中 😀 \u007f"'),
      new WriteCase('x"y\\z\n', '"x\\"y\\\\z\\n"'),
    ];
    for (let i = 0; i < cases.length; i++) {
      expect<string>(jsonString(cases[i].text)).toBe(cases[i].json, cases[i].json);
      roundTrips(cases[i].text);
    }
  });

  it("escapes unpaired surrogates, which have no UTF-8 form, and keeps pairs as they are", () => {
    const hi = String.fromCharCode(0xd800);
    const lo = String.fromCharCode(0xdfff);
    expect<string>(jsonString(hi)).toBe('"\\ud800"');
    expect<string>(jsonString("a" + lo + "b")).toBe('"a\\udfffb"');
    expect<string>(jsonString(lo + hi)).toBe('"\\udfff\\ud800"');
    expect<string>(jsonString("😀" + hi)).toBe('"😀\\ud800"');
    expect<string>(jsonString(hi + '"')).toBe('"\\ud800\\""');
    const samples: Array<string> = [hi, lo, "x" + hi, hi + "x", lo + hi + "😀", "😀", hi + hi + String.fromCharCode(0xdc00)];
    for (let i = 0; i < samples.length; i++) roundTrips(samples[i]);
  });

  it("round-trips every code unit below U+0800 and sampled ones above", () => {
    let s = "";
    for (let c = 0; c < 0x800; c++) s += String.fromCharCode(c);
    roundTrips(s);
    let t = "";
    for (let c = 0x800; c < 0x10000; c += 97) t += String.fromCharCode(c);
    roundTrips(t);
  });
});

describe("jsonStringArray", () => {
  it("writes a JSON array of escaped strings", () => {
    expect<string>(jsonStringArray([])).toBe("[]");
    expect<string>(jsonStringArray(["a"])).toBe('["a"]');
    expect<string>(jsonStringArray(["a", 'b"c', ""])).toBe('["a","b\\"c",""]');
  });
});
