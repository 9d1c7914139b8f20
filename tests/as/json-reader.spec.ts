// The byte-span JSON scanner (assembly/json/reader.ts): what it accepts, the exact spans it reports for
// selected root members, and the error class of every kind of bad input. It must never trap.
import {
  JsonError,
  JsonField,
  JsonScan,
  JsonType,
  MAX_DEPTH,
  decodeString,
  errorText,
  keyEquals,
  readBool,
  readInt,
  scanJson,
  scanString,
} from "../../assembly/json/reader";
import {
  NO_KEYS,
  around,
  bytesOf,
  errorName,
  fieldText,
  hold,
  repeat,
  scanBuf,
  scanPrefix,
  scanText,
  show,
  spanText,
  typeName,
  utf8,
} from "./helpers";

const MODEL: Array<string> = ["model"];
const MODEL_STREAM: Array<string> = ["model", "stream"];

class TextCase {
  constructor(
    public text: string,
    public error: JsonError,
    public rootType: JsonType = JsonType.None,
  ) {}
}

class BytesCase {
  constructor(
    public name: string,
    public buf: ArrayBuffer,
    public error: JsonError,
  ) {}
}

function expectScan(text: string, error: JsonError): JsonScan {
  const scan = scanText(text, NO_KEYS);
  expect<string>(errorName(scan.error)).toBe(errorName(error), "error of " + text);
  return scan;
}

function expectBytes(c: BytesCase): void {
  const scan = scanBuf(c.buf, NO_KEYS);
  expect<string>(errorName(scan.error)).toBe(errorName(c.error), c.name + ": " + show(c.buf));
}

// ---- valid documents ---------------------------------------------------------------------------------

describe("scanJson: valid documents", () => {
  it("accepts every JSON type at the root and reports it as the root type", () => {
    const cases: Array<TextCase> = [
      new TextCase("null", JsonError.Ok, JsonType.Null),
      new TextCase("true", JsonError.Ok, JsonType.Bool),
      new TextCase("false", JsonError.Ok, JsonType.Bool),
      new TextCase("0", JsonError.Ok, JsonType.Number),
      new TextCase("-0", JsonError.Ok, JsonType.Number),
      new TextCase("42", JsonError.Ok, JsonType.Number),
      new TextCase("-3.25e-10", JsonError.Ok, JsonType.Number),
      new TextCase("1E+400", JsonError.Ok, JsonType.Number),
      new TextCase("0.5", JsonError.Ok, JsonType.Number),
      new TextCase('""', JsonError.Ok, JsonType.String),
      new TextCase('"text"', JsonError.Ok, JsonType.String),
      new TextCase("{}", JsonError.Ok, JsonType.Object),
      new TextCase("[]", JsonError.Ok, JsonType.Array),
      new TextCase('{"a":[1,{"b":null}]}', JsonError.Ok, JsonType.Object),
      new TextCase('[{"model":"x"},[],"",0,true,false,null]', JsonError.Ok, JsonType.Array),
      new TextCase(' \t\r\n{ "a" : [ 1 , 2 ] , "b" : { } }\n\r\t ', JsonError.Ok, JsonType.Object),
      new TextCase('\n"padded"\n', JsonError.Ok, JsonType.String),
    ];
    for (let i = 0; i < cases.length; i++) {
      const c = cases[i];
      const scan = expectScan(c.text, c.error);
      expect<string>(typeName(scan.rootType)).toBe(typeName(c.rootType), "root type of " + c.text);
      expect<bool>(scan.ok()).toBe(true, c.text);
    }
  });

  it("accepts every escape, \\u escapes in any case and surrogate pairs", () => {
    const docs: Array<string> = [
      '"\\" \\\\ \\/ \\b \\f \\n \\r \\t"',
      '"\\u0000\\u001f\\u0041\\u00e9\\u00E9\\u4e2d\\uFFFF"',
      '"\\ud83d\\ude00"',
      '"\\uD83D\\uDE00 and a lone \\ud800 or \\udfff"',
      '{"k\\u0065y\\n":"v\\""}',
    ];
    for (let i = 0; i < docs.length; i++) expectScan(docs[i], JsonError.Ok);
  });

  it("accepts raw UTF-8 at every sequence length boundary", () => {
    const cases: Array<BytesCase> = [
      new BytesCase("U+007F", around('"', [0x7f], '"'), JsonError.Ok),
      new BytesCase("U+0080", around('"', [0xc2, 0x80], '"'), JsonError.Ok),
      new BytesCase("U+07FF", around('"', [0xdf, 0xbf], '"'), JsonError.Ok),
      new BytesCase("U+0800", around('"', [0xe0, 0xa0, 0x80], '"'), JsonError.Ok),
      new BytesCase("U+D7FF", around('"', [0xed, 0x9f, 0xbf], '"'), JsonError.Ok),
      new BytesCase("U+E000", around('"', [0xee, 0x80, 0x80], '"'), JsonError.Ok),
      new BytesCase("U+FFFF", around('"', [0xef, 0xbf, 0xbf], '"'), JsonError.Ok),
      new BytesCase("U+10000", around('"', [0xf0, 0x90, 0x80, 0x80], '"'), JsonError.Ok),
      new BytesCase("U+10FFFF", around('"', [0xf4, 0x8f, 0xbf, 0xbf], '"'), JsonError.Ok),
      new BytesCase("mixed text", utf8('{"content":"héllo wörld 中文 😀"}'), JsonError.Ok),
    ];
    for (let i = 0; i < cases.length; i++) expectBytes(cases[i]);
  });

  it("accepts nesting up to MAX_DEPTH (128) arrays and objects", () => {
    expect<i32>(MAX_DEPTH).toBe(128);
    expectScan(repeat("[", 128) + repeat("]", 128), JsonError.Ok);
    expectScan(repeat('{"a":', 127) + "[]" + repeat("}", 127), JsonError.Ok);
    expectScan(repeat('[{"a":', 64) + "0" + repeat("}]", 64), JsonError.Ok);
  });

  it("accepts a 4 MB string and reports the exact span of the member holding it", () => {
    const big = "x".repeat(4 * 1024 * 1024 - 8) + "é\\n\\u00e9";
    const doc = utf8('{"model":"m","prompt":"' + big + '","stream":true}');
    const scan = scanBuf(doc, ["model", "prompt", "stream"]);
    expect<string>(errorName(scan.error)).toBe("Ok");
    const prompt = scan.field(1);
    expect<bool>(prompt.found).toBe(true);
    expect<i32>(prompt.start).toBe(22);
    expect<i32>(prompt.end).toBe(22 + String.UTF8.byteLength(big) + 2);
    expect<i32>(scan.field(2).start).toBe(prompt.end + 10);
    // Decoding is bounded: a value over the limit is refused, not copied.
    expect<string | null>(decodeString(hold(doc), prompt.start, prompt.end, 256)).toBeNull();
    const unterminated = utf8('{"prompt":"' + big);
    expect<string>(errorName(scanBuf(unterminated, NO_KEYS).error)).toBe("Truncated");
  });

  it("scans a document with many members and long arrays", () => {
    let doc = "{";
    for (let i = 0; i < 5000; i++) doc += '"k' + i.toString() + '":[' + i.toString() + ',"v"],';
    doc += '"model":"last"}';
    const buf = utf8(doc);
    const scan = scanBuf(buf, MODEL);
    expect<string>(errorName(scan.error)).toBe("Ok");
    expect<string>(fieldText(buf, scan.field(0))).toBe('"last"');
  });
});

// ---- spans of root members ---------------------------------------------------------------------------

class SpanCase {
  constructor(
    public doc: string,
    public keys: Array<string>,
    public key: i32,
    public type: JsonType,
    public start: i32,
    public end: i32,
    public text: string,
  ) {}
}

describe("scanJson: spans of selected root members", () => {
  it("reports the exact [start, end) byte span and type of each selected member's value", () => {
    const messagesDoc = '{\n\t"messages": [{"role": "user", "content": "hi"}],\r\n\t"model":\t"qwen"\n}';
    const spaced = ' { "model" : "gpt-4o" , "stream" : true } ';
    const cases: Array<SpanCase> = [
      new SpanCase('{"model":"m"}', MODEL, 0, JsonType.String, 9, 12, '"m"'),
      new SpanCase(spaced, MODEL_STREAM, 0, JsonType.String, 13, 21, '"gpt-4o"'),
      new SpanCase(spaced, MODEL_STREAM, 1, JsonType.Bool, 35, 39, "true"),
      new SpanCase('{"a":1,"model":null}', MODEL, 0, JsonType.Null, 15, 19, "null"),
      new SpanCase('{"model":-12.5e+3,"z":0}', MODEL, 0, JsonType.Number, 9, 17, "-12.5e+3"),
      new SpanCase('{"x":{"model":1},"model":[1,[2,{"k":"v"}]]}', MODEL, 0, JsonType.Array, 25, 42, '[1,[2,{"k":"v"}]]'),
      new SpanCase('{"model":{"a":{"b":{}}}}', MODEL, 0, JsonType.Object, 9, 23, '{"a":{"b":{}}}'),
      new SpanCase('{"model":{}}', MODEL, 0, JsonType.Object, 9, 11, "{}"),
      new SpanCase('{"model":[ ]}', MODEL, 0, JsonType.Array, 9, 12, "[ ]"),
      new SpanCase('{"model":false}', MODEL, 0, JsonType.Bool, 9, 14, "false"),
      new SpanCase('{"model":"a\\"b\\\\"}', MODEL, 0, JsonType.String, 9, 17, '"a\\"b\\\\"'),
      new SpanCase(messagesDoc, ["messages", "model"], 1, JsonType.String, 63, 69, '"qwen"'),
      new SpanCase(messagesDoc, ["messages", "model"], 0, JsonType.Array, 15, 50, '[{"role": "user", "content": "hi"}]'),
      new SpanCase('{"mod\\u0065l":"e"}', MODEL, 0, JsonType.String, 14, 17, '"e"'),
      new SpanCase('{"model":0}', MODEL, 0, JsonType.Number, 9, 10, "0"),
    ];
    for (let i = 0; i < cases.length; i++) {
      const c = cases[i];
      const buf = utf8(c.doc);
      const scan = scanBuf(buf, c.keys);
      const what = c.keys[c.key] + " in " + c.doc;
      expect<string>(errorName(scan.error)).toBe("Ok", what);
      const f = scan.field(c.key);
      expect<bool>(f.found).toBe(true, what);
      expect<string>(typeName(f.type)).toBe(typeName(c.type), what);
      expect<i32>(f.start).toBe(c.start, "start of " + what);
      expect<i32>(f.end).toBe(c.end, "end of " + what);
      expect<string>(fieldText(buf, f)).toBe(c.text, what);
    }
  });

  it("reports absent keys as not found with an empty span", () => {
    const scan = scanText('{"messages":[],"temperature":1}', MODEL_STREAM);
    expect<string>(errorName(scan.error)).toBe("Ok");
    for (let i = 0; i < 2; i++) {
      const f = scan.field(i);
      expect<bool>(f.found).toBe(false);
      expect<string>(typeName(f.type)).toBe("None");
      expect<i32>(f.start).toBe(0);
      expect<i32>(f.end).toBe(0);
    }
  });

  it("matches keys after unescaping, and only exact names", () => {
    const matching: Array<string> = [
      '{"model":1}',
      '{"mod\\u0065l":1}',
      '{"\\u006dodel":1}',
      '{"mode\\u006C":1}',
      '{"\\u006D\\u006F\\u0064\\u0065\\u006C":1}',
    ];
    for (let i = 0; i < matching.length; i++) {
      expect<bool>(scanText(matching[i], MODEL).field(0).found).toBe(true, matching[i]);
    }
    const other: Array<string> = [
      '{"Model":1}',
      '{"mode":1}',
      '{"models":1}',
      '{"model ":1}',
      '{" model":1}',
      '{"modél":1}',
      '{"mod\\u0065l\\u0000":1}',
      '{"mod\\\\u0065l":1}',
      '{"":1}',
    ];
    for (let i = 0; i < other.length; i++) {
      const scan = scanText(other[i], MODEL);
      expect<string>(errorName(scan.error)).toBe("Ok", other[i]);
      expect<bool>(scan.field(0).found).toBe(false, other[i]);
    }
  });

  it("does not take members of nested objects or of a non-object root as root members", () => {
    const docs: Array<string> = [
      '{"o":{"model":"x"}}',
      '{"a":[{"model":"x"}]}',
      '{"a":{"b":{"model":"x"}}}',
      '[{"model":"x"}]',
      '["model","x"]',
      '"model"',
    ];
    for (let i = 0; i < docs.length; i++) {
      const scan = scanText(docs[i], MODEL);
      expect<string>(errorName(scan.error)).toBe("Ok", docs[i]);
      expect<bool>(scan.field(0).found).toBe(false, docs[i]);
    }
    // A nested member with the selected name neither shadows nor duplicates the root one.
    const buf = utf8('{"o":{"model":"inner"},"model":"outer","p":[{"model":"x"}]}');
    const scan = scanBuf(buf, MODEL);
    expect<string>(errorName(scan.error)).toBe("Ok");
    expect<string>(fieldText(buf, scan.field(0))).toBe('"outer"');
  });

  it("refuses a selected key given twice with DuplicateKey, naming it and pointing at the second key", () => {
    const docs: Array<string> = [
      '{"model":"a","model":"b"}',
      '{"model":"a","mod\\u0065l":"b"}',
      '{"m\\u006fdel":"a","model":"b"}',
      '{"model":{"x":1},"model":2}',
      '{"model":null,"stream":true,"model":null}',
    ];
    for (let i = 0; i < docs.length; i++) {
      const scan = scanText(docs[i], MODEL_STREAM);
      expect<string>(errorName(scan.error)).toBe("DuplicateKey", docs[i]);
      expect<string>(scan.duplicateKey).toBe("model", docs[i]);
      expect<i32>(scan.errorAt).toBe(docs[i].lastIndexOf(',"m') + 1, docs[i]);
    }
    const stream = scanText('{"stream":true,"model":"m","stream":false}', MODEL_STREAM);
    expect<string>(errorName(stream.error)).toBe("DuplicateKey");
    expect<string>(stream.duplicateKey).toBe("stream");
  });

  it("allows duplicates of keys that are not selected", () => {
    const buf = utf8('{"a":1,"a":2,"model":"m","messages":[],"messages":{}}');
    const scan = scanBuf(buf, MODEL);
    expect<string>(errorName(scan.error)).toBe("Ok");
    expect<string>(fieldText(buf, scan.field(0))).toBe('"m"');
    expect<string>(errorName(scanText('{"a":1,"a":1}', NO_KEYS).error)).toBe("Ok");
  });

  it("forgets the previous document's members and error when a JsonScan is reused", () => {
    const scan = new JsonScan(MODEL_STREAM);
    const first = utf8('{"model":"a","stream":true}');
    scanJson(hold(first), first.byteLength, scan);
    expect<bool>(scan.field(1).found).toBe(true);
    const second = utf8('{"model":"a","model":"b"}');
    scanJson(hold(second), second.byteLength, scan);
    expect<string>(errorName(scan.error)).toBe("DuplicateKey");
    const third = utf8("[1]");
    scanJson(hold(third), third.byteLength, scan);
    expect<string>(errorName(scan.error)).toBe("Ok");
    expect<string>(scan.duplicateKey).toBe("");
    expect<i32>(scan.errorAt).toBe(0);
    expect<string>(typeName(scan.rootType)).toBe("Array");
    expect<bool>(scan.field(0).found).toBe(false);
    expect<bool>(scan.field(1).found).toBe(false);
  });

  it("scans a sub-span in place (a member's value found by a first scan)", () => {
    const buf = utf8('{"stream_options": {"include_usage": false}, "model": "m"}');
    const outer = scanBuf(buf, ["stream_options"]);
    const f = outer.field(0);
    const inner = new JsonScan(["include_usage"]);
    scanJson(hold(buf) + <usize>f.start, f.end - f.start, inner);
    expect<string>(errorName(inner.error)).toBe("Ok");
    const iu = inner.field(0);
    expect<string>(spanText(buf, f.start + iu.start, f.start + iu.end)).toBe("false");
  });

  it("answers an out-of-range field index with an unfound field instead of trapping", () => {
    const scan = scanText('{"model":1}', MODEL);
    expect<bool>(scan.field(1).found).toBe(false);
    expect<bool>(scan.field(-1).found).toBe(false);
    expect<bool>(scan.field(i32.MAX_VALUE).found).toBe(false);
  });

  it("never reads past the keys' fields when keys grow after construction", () => {
    const keys: Array<string> = ["model"];
    const scan = new JsonScan(keys);
    keys.push("stream");
    const buf = utf8('{"stream":true,"model":"m"}');
    scanJson(hold(buf), buf.byteLength, scan);
    expect<string>(errorName(scan.error)).toBe("Ok");
    expect<bool>(scan.field(0).found).toBe(true);
  });
});

// ---- errors ------------------------------------------------------------------------------------------

describe("scanJson: errors", () => {
  it("reports Empty for no bytes or whitespace only", () => {
    const docs: Array<string> = ["", " ", "\n", "\t\r\n ", repeat(" ", 1000)];
    for (let i = 0; i < docs.length; i++) expectScan(docs[i], JsonError.Empty);
    const scan = new JsonScan(NO_KEYS);
    scanJson(0, 0, scan);
    expect<string>(errorName(scan.error)).toBe("Empty");
    scanJson(0, -5, scan);
    expect<string>(errorName(scan.error)).toBe("Empty", "negative length");
  });

  it("reports Truncated for every proper prefix of valid documents", () => {
    const docs: Array<string> = [
      '{"model":"gpt-4o","messages":[{"role":"user","content":"h\\u00e9llo \\"x\\" \\ud83d\\ude00 héllo 😀 中"}],' +
        '"stream":true,"temperature":0.7,"n":-1e+2,"stop":null,"logprobs":false,"x":{}}',
      '[1,[2,[3,{}]],"",-0.5E-7,[],{"a":[]}]',
      '  { "a" : [ true , false , null ] }  ',
    ];
    for (let d = 0; d < docs.length; d++) {
      const buf = utf8(docs[d]);
      const lead = docs[d].length - docs[d].trimStart().length;
      const body = buf.byteLength - (docs[d].length - docs[d].trimEnd().length);
      for (let n = 0; n < body; n++) {
        const scan = scanPrefix(buf, n, MODEL);
        const want = n <= lead ? "Empty" : "Truncated";
        expect<string>(errorName(scan.error)).toBe(want, "prefix " + n.toString() + " of " + docs[d]);
        expect<bool>(scan.errorAt <= n).toBe(true, "errorAt inside the prefix " + n.toString());
      }
      expect<string>(errorName(scanPrefix(buf, buf.byteLength, MODEL).error)).toBe("Ok", docs[d]);
    }
  });

  it("reports TrailingData for anything after the root value", () => {
    const cases: Array<TextCase> = [
      new TextCase("{} x", JsonError.TrailingData),
      new TextCase("{}{}", JsonError.TrailingData),
      new TextCase("[] ,", JsonError.TrailingData),
      new TextCase('"a""b"', JsonError.TrailingData),
      new TextCase("1 2", JsonError.TrailingData),
      new TextCase("true false", JsonError.TrailingData),
      new TextCase("null,", JsonError.TrailingData),
      new TextCase('{"a":1}}', JsonError.TrailingData),
      new TextCase("[1]]", JsonError.TrailingData),
      new TextCase("{}\u0000", JsonError.TrailingData),
      new TextCase("nulll", JsonError.TrailingData),
      new TextCase("0x10", JsonError.TrailingData),
    ];
    for (let i = 0; i < cases.length; i++) expectScan(cases[i].text, cases[i].error);
    expect<i32>(scanText("{}  x", NO_KEYS).errorAt).toBe(4);
  });

  it("reports Syntax for bad literals, NaN and Infinity", () => {
    const docs: Array<string> = [
      "True",
      "TRUE",
      "trUe",
      "nil",
      "None",
      "undefined",
      "[tru]",
      "[nul]",
      '{"a":fals}',
      "falsE",
      "[falsy]",
      "fAlse",
      "nulL",
      "[nuLl]",
      "truE",
      "[t]",
      "NaN",
      "-NaN",
      "Infinity",
      "-Infinity",
      "[Infinity]",
      '{"a":NaN}',
      "'a'",
      "x",
    ];
    for (let i = 0; i < docs.length; i++) expectScan(docs[i], JsonError.Syntax);
    const cut: Array<string> = ["t", "tr", "tru", "f", "fals", "n", "nul"];
    for (let i = 0; i < cut.length; i++) expectScan(cut[i], JsonError.Truncated);
  });

  it("reports Syntax for numbers with leading zeros, a plus sign or missing digits", () => {
    const docs: Array<string> = [
      "01",
      "-01",
      "00",
      "007",
      "[01]",
      '{"n":00}',
      "-00.5",
      "+1",
      ".5",
      "[1.]",
      "1.e3",
      "[1e]",
      "[1e+]",
      "-a",
      "[-]",
      "[1.5.5]",
      "[1ee5]",
      "[--1]",
      "- 1",
    ];
    for (let i = 0; i < docs.length; i++) expectScan(docs[i], JsonError.Syntax);
    // At the very end of the input, the same prefixes could still become numbers.
    const cut: Array<string> = ["-", "1.", "1e", "1e+", "1E-", "-0."];
    for (let i = 0; i < cut.length; i++) expectScan(cut[i], JsonError.Truncated);
    expect<i32>(scanText("[1, 01]", NO_KEYS).errorAt).toBe(4);
  });

  it("reports Syntax for structural mistakes", () => {
    const docs: Array<string> = [
      '{"a" 1}',
      '{"a":1 "b":2}',
      '{"a":1,}',
      "[1,]",
      "[,1]",
      "{,}",
      "{a:1}",
      "{'a':1}",
      '{"a"}',
      '{"a":}',
      "[1 2]",
      '{"a":1]',
      "[1}",
      "}",
      "]",
      ":",
      ",",
      '{"a"::1}',
      "[:]",
      "{1:2}",
      "{null:1}",
      '["a":1]',
      "\u00ef\u00bb\u00bf{}",
      "\u000c{}",
      "\u00a0{}",
      '{"a":1,,"b":2}',
      "[[]}",
    ];
    for (let i = 0; i < docs.length; i++) expectScan(docs[i], JsonError.Syntax);
    const bom = scanBuf(bytesOf([0xef, 0xbb, 0xbf, 0x7b, 0x7d]), NO_KEYS);
    expect<string>(errorName(bom.error)).toBe("Syntax", "UTF-8 byte order mark");
    expect<i32>(bom.errorAt).toBe(0);
  });

  it("reports BadString for raw control characters in strings, also in keys", () => {
    for (let c = 0; c < 0x20; c++) {
      expectBytes(new BytesCase("control " + c.toString(), around('"a', [c], 'b"'), JsonError.BadString));
      expectBytes(new BytesCase("control in key " + c.toString(), around('{"a', [c], '":1}'), JsonError.BadString));
    }
    expectBytes(new BytesCase("DEL is allowed", around('"a', [0x7f], '"'), JsonError.Ok));
  });

  it("reports BadString for invalid escapes", () => {
    const docs: Array<string> = [
      '"\\x41"',
      '"\\U0041"',
      '"\\\'"',
      '"\\a"',
      '"\\0"',
      '"\\u12G4"',
      '"\\u00"',
      '"\\u 123"',
      '"\\u-123"',
      '{"\\q":1}',
      '"\\\u00e9"',
    ];
    for (let i = 0; i < docs.length; i++) expectScan(docs[i], JsonError.BadString);
    const cut: Array<string> = ['"abc', '"abc\\', '"\\u12', '"\\u123', '{"a'];
    for (let i = 0; i < cut.length; i++) expectScan(cut[i], JsonError.Truncated);
  });

  it("reports BadString for invalid UTF-8: overlongs, surrogates, stray bytes, truncated sequences, > U+10FFFF", () => {
    const bad: Array<Array<i32>> = [
      [0xc0, 0xaf],
      [0xc1, 0xbf],
      [0xc0, 0x80], // overlong 2-byte
      [0xe0, 0x80, 0xaf],
      [0xe0, 0x9f, 0xbf], // overlong 3-byte
      [0xf0, 0x80, 0x80, 0xaf],
      [0xf0, 0x8f, 0xbf, 0xbf], // overlong 4-byte
      [0xed, 0xa0, 0x80],
      [0xed, 0xbf, 0xbf],
      [0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80], // UTF-16 surrogates
      [0xf4, 0x90, 0x80, 0x80],
      [0xf5, 0x80, 0x80, 0x80],
      [0xf7, 0xbf, 0xbf, 0xbf], // above U+10FFFF
      [0xf8, 0x88, 0x80, 0x80, 0x80],
      [0xfc, 0x84, 0x80, 0x80, 0x80, 0x80],
      [0xfe],
      [0xff],
      [0x80],
      [0xbf],
      [0x80, 0x80], // continuation bytes without a lead
      [0xc3],
      [0xe2, 0x82],
      [0xf0, 0x9f, 0x98], // sequences cut by the closing quote
      [0xc3, 0x41],
      [0xe2, 0x41, 0x82],
      [0xf0, 0x9f, 0x41, 0x80],
      [0xe2, 0x82, 0xc3, 0xa9], // non-continuation inside
    ];
    for (let i = 0; i < bad.length; i++) {
      expectBytes(new BytesCase("in a value", around('{"a":"x', bad[i], 'y"}'), JsonError.BadString));
      expectBytes(new BytesCase("in a key", around('{"', bad[i], '":1}'), JsonError.BadString));
    }
    // Outside strings, non-ASCII bytes are not JSON at all.
    expectBytes(new BytesCase("bare", around("[", [0xc3, 0xa9], "]"), JsonError.Syntax));
    // A sequence cut by the end of the input may still be completed: Truncated.
    expectBytes(new BytesCase("cut at the end", around('"x', [0xe2, 0x82], ""), JsonError.Truncated));
    expectBytes(new BytesCase("cut at the end", around('"x', [0xf0], ""), JsonError.Truncated));
  });

  it("accepts MAX_DEPTH (128) levels and reports TooDeep at the 129th opener", () => {
    const cases: Array<string> = [
      repeat("[", 129) + repeat("]", 129),
      repeat('{"a":', 129) + "1" + repeat("}", 129),
      repeat('[{"a":', 65) + "1" + repeat("}]", 65),
      repeat("[", 129),
      repeat("[", 100000),
    ];
    for (let i = 0; i < cases.length; i++) {
      const scan = scanText(cases[i], MODEL);
      expect<string>(errorName(scan.error)).toBe("TooDeep", cases[i].substring(0, 40));
    }
    expect<i32>(scanText(repeat("[", 129), NO_KEYS).errorAt).toBe(128);
    expect<i32>(scanText(repeat('{"a":', 129) + "1" + repeat("}", 129), NO_KEYS).errorAt).toBe(5 * 128);
    // The depth is released when containers close: many siblings at depth 128 are fine.
    expectScan(repeat("[", 127) + repeat("[],", 500) + "[]" + repeat("]", 127), JsonError.Ok);
  });

  it("reports the byte offset of the error in errorAt", () => {
    const cases: Array<string> = ['{"a":x}', "[1,2,3,,]", '{"a":"\\x"}', "  }"];
    const at: Array<i32> = [5, 7, 5, 2];
    for (let i = 0; i < cases.length; i++) expect<i32>(scanText(cases[i], NO_KEYS).errorAt).toBe(at[i], cases[i]);
  });

  it("describes every error in words", () => {
    const errors: Array<JsonError> = [
      JsonError.Empty,
      JsonError.Syntax,
      JsonError.Truncated,
      JsonError.TooDeep,
      JsonError.TrailingData,
      JsonError.DuplicateKey,
      JsonError.BadString,
    ];
    for (let i = 0; i < errors.length; i++) {
      const text = errorText(errors[i]);
      expect<bool>(text.length > 0 && text != "ok").toBe(true, errorName(errors[i]));
      for (let j = 0; j < i; j++) expect<string>(text).not.toBe(errorText(errors[j]));
    }
    expect<string>(errorText(JsonError.TooDeep)).toBe("the body nests deeper than 128 levels");
    expect<string>(errorText(JsonError.Ok)).toBe("ok");
  });
});

// ---- direct helpers ----------------------------------------------------------------------------------

describe("scanString and keyEquals", () => {
  it("returns the index after the closing quote, or a negative error", () => {
    const buf = utf8('x"ab\\"c"y');
    expect<i32>(scanString(hold(buf), 1, buf.byteLength)).toBe(8);
    const bad = utf8('"a\\qb"');
    expect<i32>(scanString(hold(bad), 0, bad.byteLength)).toBe(-(<i32>JsonError.BadString));
    const cut = utf8('"abc');
    expect<i32>(scanString(hold(cut), 0, cut.byteLength)).toBe(-(<i32>JsonError.Truncated));
  });

  it("finds a quote, an escape, a control byte or a bad UTF-8 byte at any position of an ASCII run", () => {
    // The reader skips plain ASCII 8 bytes at a time: each special byte must be seen wherever it falls
    // in or after such a block, including the last byte before the end of the input.
    for (let at = 0; at < 20; at++) {
      const plain = repeat("a", at);
      const tail = repeat("b", 11);
      const ok = utf8('"' + plain + '"' + tail);
      expect<i32>(scanString(hold(ok), 0, ok.byteLength)).toBe(at + 2, "quote after " + at.toString());
      const esc = utf8('"' + plain + '\\"x"' + tail);
      expect<i32>(scanString(hold(esc), 0, esc.byteLength)).toBe(at + 5, "escape after " + at.toString());
      const bad = utf8('"' + plain + "\\q" + tail + '"');
      expect<i32>(scanString(hold(bad), 0, bad.byteLength)).toBe(-(<i32>JsonError.BadString), "bad escape after " + at.toString());
      const ctl = utf8('"' + plain + "\n" + tail + '"');
      expect<i32>(scanString(hold(ctl), 0, ctl.byteLength)).toBe(-(<i32>JsonError.BadString), "control after " + at.toString());
      const wide = utf8('"' + plain + "é" + tail + '"');
      expect<i32>(scanString(hold(wide), 0, wide.byteLength)).toBe(wide.byteLength, "UTF-8 after " + at.toString());
      const stray = new Uint8Array(at + 14);
      stray[0] = 0x22;
      for (let i = 1; i < stray.length - 1; i++) stray[i] = 0x61;
      stray[at + 1] = 0x80; // a continuation byte with no lead
      stray[stray.length - 1] = 0x22;
      expect<i32>(scanString(hold(stray.buffer), 0, stray.length)).toBe(-(<i32>JsonError.BadString), "stray byte after " + at.toString());
      const cut = utf8('"' + plain + tail);
      expect<i32>(scanString(hold(cut), 0, cut.byteLength)).toBe(-(<i32>JsonError.Truncated), "cut after " + at.toString());
    }
  });

  it("compares a raw key with a name after unescaping", () => {
    const keys: Array<string> = ['"model"', '"mod\\u0065l"', '"m\\u006Fdel"', '"mode"', '"models"', '"modél"', '""', '"\\n\\""'];
    const names: Array<string> = ["model", "model", "model", "model", "model", "model", "", '\n"'];
    const want: Array<bool> = [true, true, true, false, false, false, true, true];
    for (let i = 0; i < keys.length; i++) {
      const buf = utf8(keys[i]);
      expect<bool>(keyEquals(hold(buf), 0, buf.byteLength, names[i])).toBe(want[i], keys[i] + " vs " + names[i]);
    }
  });
});

class DecodeCase {
  constructor(
    public json: string,
    public text: string,
  ) {}
}

describe("value readers: decodeString, readBool, readInt", () => {
  it("decodes string spans: plain, escaped, \\u escapes, surrogate pairs, raw UTF-8", () => {
    const cases: Array<DecodeCase> = [
      new DecodeCase('"hello"', "hello"),
      new DecodeCase('""', ""),
      new DecodeCase('"a\\"b\\\\c\\/d"', 'a"b\\c/d'),
      new DecodeCase('"\\b\\f\\n\\r\\t"', "\b\f\n\r\t"),
      new DecodeCase('"\\u0041\\u00e9\\u4E2D"', "Aé中"),
      new DecodeCase('"\\ud83d\\ude00"', "😀"),
      new DecodeCase('"\\uD83D\\uDE00!"', "😀!"),
      new DecodeCase('"héllo 中 😀"', "héllo 中 😀"),
      new DecodeCase('"é\\n😀x\\u0021"', "é\n😀x!"),
      new DecodeCase('"mod\\u0065l"', "model"),
      new DecodeCase('"\\u0000"', "\0"),
    ];
    for (let i = 0; i < cases.length; i++) {
      const buf = utf8(cases[i].json);
      const s = decodeString(hold(buf), 0, buf.byteLength, 1000);
      expect<string | null>(s).toBe(cases[i].text, cases[i].json);
    }
    const lone = utf8('"\\ud800"');
    const s = decodeString(hold(lone), 0, lone.byteLength, 100);
    expect<i32>(s!.length).toBe(1);
    expect<i32>(s!.charCodeAt(0)).toBe(0xd800);
  });

  it("decodes a span inside a larger document", () => {
    const buf = utf8('{"model":"qw\\u0065n","x":1}');
    const scan = scanBuf(buf, MODEL);
    const f = scan.field(0);
    expect<string | null>(decodeString(hold(buf), f.start, f.end, 64)).toBe("qwen");
  });

  it("bounds decodeString by maxBytes of raw content and refuses non-string spans", () => {
    const buf = utf8('"abcdef"');
    const p = hold(buf);
    expect<string | null>(decodeString(p, 0, 8, 6)).toBe("abcdef");
    expect<string | null>(decodeString(p, 0, 8, 5)).toBeNull();
    expect<string | null>(decodeString(p, 0, 8, 0)).toBeNull();
    expect<string | null>(decodeString(p, 0, 2, 10)).toBeNull(); // "a: no closing quote
    expect<string | null>(decodeString(p, 0, 1, 10)).toBeNull();
    expect<string | null>(decodeString(p, 3, 2, 10)).toBeNull();
    expect<string | null>(decodeString(p, 1, 7, 10)).toBeNull(); // does not start at a quote
    const escaped = utf8('"\\u0041"');
    expect<string | null>(decodeString(hold(escaped), 0, 8, 6)).toBe("A"); // the bound counts raw bytes
    expect<string | null>(decodeString(hold(escaped), 0, 8, 5)).toBeNull();
  });

  it("reads booleans of Bool members, else the fallback", () => {
    const buf = utf8('{"t":true,"f":false,"s":"true","n":1,"z":null,"o":{}}');
    const scan = scanBuf(buf, ["t", "f", "s", "n", "z", "o", "absent"]);
    const p = hold(buf);
    expect<bool>(readBool(p, scan.field(0), false)).toBe(true);
    expect<bool>(readBool(p, scan.field(1), true)).toBe(false);
    for (let i = 2; i < 7; i++) {
      expect<bool>(readBool(p, scan.field(i), true)).toBe(true, scan.keys[i]);
      expect<bool>(readBool(p, scan.field(i), false)).toBe(false, scan.keys[i]);
    }
  });

  it("reads non-negative integers up to 2^53-1, else -1", () => {
    const values: Array<string> = [
      "0",
      "7",
      "42",
      "9007199254740991",
      "9007199254740992",
      "99999999999999999999999",
      "-1",
      "-0",
      "1.0",
      "1e3",
      "2E2",
      '"5"',
      "true",
      "null",
      "[1]",
    ];
    const want: Array<i64> = [0, 7, 42, 9007199254740991, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1];
    for (let i = 0; i < values.length; i++) {
      const buf = utf8('{"n":' + values[i] + "}");
      const scan = scanBuf(buf, ["n"]);
      expect<string>(errorName(scan.error)).toBe("Ok", values[i]);
      expect<i64>(readInt(hold(buf), scan.field(0))).toBe(want[i], values[i]);
    }
    expect<i64>(readInt(0, new JsonField())).toBe(-1, "absent");
  });
});
