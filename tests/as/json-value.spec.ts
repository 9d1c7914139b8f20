// The configuration's JSON tree (assembly/json/value.ts): values, member lookup, and errors that never trap.
import { JsonType, MAX_DEPTH } from "../../assembly/json/reader";
import { JsonValue, parseJson } from "../../assembly/json/value";
import { repeat, typeName } from "./helpers";

function parsed(text: string): JsonValue {
  const res = parseJson(text);
  expect<string>(res.error).toBe("", text);
  expect<bool>(res.value != null).toBe(true, text);
  return res.value!;
}

class NumberCase {
  constructor(
    public text: string,
    public value: f64,
    public isInteger: bool,
  ) {}
}

class ErrorCase {
  constructor(
    public text: string,
    public error: string,
  ) {}
}

describe("parseJson: values", () => {
  it("parses scalars with their type and value", () => {
    expect<string>(typeName(parsed("null").type)).toBe("Null");
    const t = parsed("true");
    expect<string>(typeName(t.type)).toBe("Bool");
    expect<bool>(t.boolValue).toBe(true);
    expect<bool>(parsed(" false ").boolValue).toBe(false);
    const s = parsed('"qwen\\u0032-7b \\"chat\\" \\ud83d\\ude00 é"');
    expect<string>(typeName(s.type)).toBe("String");
    expect<string>(s.strValue).toBe('qwen2-7b "chat" 😀 é');
  });

  it("parses numbers and tells integers from fractions and exponents", () => {
    const cases: Array<NumberCase> = [
      new NumberCase("0", 0, true),
      new NumberCase("-0", -0.0, true),
      new NumberCase("42", 42, true),
      new NumberCase("-17", -17, true),
      new NumberCase("1073741824", 1073741824, true),
      new NumberCase("9007199254740992", 9007199254740992.0, true),
      new NumberCase("1.0", 1, false),
      new NumberCase("2.5", 2.5, false),
      new NumberCase("1e3", 1000, false),
      new NumberCase("-1.5E-2", -0.015, false),
      new NumberCase("1E+2", 100, false),
    ];
    for (let i = 0; i < cases.length; i++) {
      const v = parsed(cases[i].text);
      expect<string>(typeName(v.type)).toBe("Number", cases[i].text);
      expect<f64>(v.numValue).toBe(cases[i].value, cases[i].text);
      expect<bool>(v.isInteger).toBe(cases[i].isInteger, cases[i].text);
    }
    // Beyond 2^53 integers are no longer exact as f64 anyway; digit-by-digit arithmetic stays within
    // a relative 1e-15 (configuration refuses such values as out of range).
    const big = parsed("12345678901234567890");
    expect<bool>(Math.abs(big.numValue - 12345678901234567890.0) / 12345678901234567890.0 < 1e-15).toBe(
      true,
      "close to 1.2345678901234567e19",
    );
    const huge = parsed("1e400");
    expect<bool>(huge.numValue == Infinity).toBe(true, "1e400 is +Infinity, not a trap");
  });

  it("keeps object members in document order and finds them by name", () => {
    const v = parsed('{"b":1,"a":[true,null,"x"],"c":{"d":{}},"":0,"k\\u0065y":"v"}');
    expect<string>(typeName(v.type)).toBe("Object");
    expect<string>(v.keys.join(",")).toBe("b,a,c,,key");
    expect<i32>(v.items.length).toBe(5);
    expect<f64>(v.get("b")!.numValue).toBe(1);
    const a = v.get("a")!;
    expect<string>(typeName(a.type)).toBe("Array");
    expect<i32>(a.items.length).toBe(3);
    expect<string>(typeName(a.items[1].type)).toBe("Null");
    expect<string>(a.items[2].strValue).toBe("x");
    expect<string>(typeName(v.get("c")!.get("d")!.type)).toBe("Object");
    expect<bool>(v.has("")).toBe(true);
    expect<string>(v.get("key")!.strValue).toBe("v");
  });

  it("answers null for absent members and for lookups on non-objects", () => {
    const v = parsed('{"a":1}');
    expect<bool>(v.get("b") == null).toBe(true);
    expect<bool>(v.has("b")).toBe(false);
    expect<bool>(v.has("A")).toBe(false);
    expect<bool>(parsed("[1]").get("0") == null).toBe(true);
    expect<bool>(parsed('"a"').get("a") == null).toBe(true);
  });

  it("parses empty containers and containers with whitespace everywhere", () => {
    expect<i32>(parsed("{}").keys.length).toBe(0);
    expect<i32>(parsed("[]").items.length).toBe(0);
    const v = parsed(' {\n "a" :\t[ 1 ,\r\n 2 ] , "b" : { } } ');
    expect<i32>(v.get("a")!.items.length).toBe(2);
    expect<f64>(v.get("a")!.items[1].numValue).toBe(2);
  });

  it("parses MAX_DEPTH (128) levels of nesting", () => {
    expect<i32>(MAX_DEPTH).toBe(128);
    let v = parsed(repeat("[", 127) + '{"a":1}' + repeat("]", 127));
    for (let i = 0; i < 127; i++) v = v.items[0];
    expect<f64>(v.get("a")!.numValue).toBe(1);
  });
});

describe("parseJson: errors", () => {
  it("refuses malformed documents with the byte offset and the reason", () => {
    const cases: Array<ErrorCase> = [
      new ErrorCase("", "invalid JSON at byte 0: the document is empty"),
      new ErrorCase("  \n", "invalid JSON at byte 3: the document is empty"),
      new ErrorCase('{"a":1', "invalid JSON at byte 6: the document ends too early"),
      new ErrorCase('{"a":1,}', "invalid JSON at byte 7: not valid JSON"),
      new ErrorCase('{"a":tru}', "invalid JSON at byte 5: not valid JSON"),
      new ErrorCase("{} {}", "invalid JSON at byte 3: data after the JSON value"),
      new ErrorCase('{"a":"\\x"}', "invalid JSON at byte 5: an invalid string (bad escape, control character or UTF-8)"),
      new ErrorCase('{"a":"\n"}', "invalid JSON at byte 5: an invalid string (bad escape, control character or UTF-8)"),
      new ErrorCase("[01]", "invalid JSON at byte 1: not valid JSON"),
      new ErrorCase(repeat("[", 129) + repeat("]", 129), "invalid JSON at byte 128: nesting deeper than 128 levels"),
    ];
    for (let i = 0; i < cases.length; i++) {
      const res = parseJson(cases[i].text);
      expect<bool>(res.value == null).toBe(true, cases[i].text);
      expect<string>(res.error).toBe(cases[i].error, cases[i].text);
    }
  });

  it("refuses duplicate keys at any depth, naming the path in configuration form", () => {
    const cases: Array<ErrorCase> = [
      new ErrorCase('{"a":1,"a":2}', "duplicate key a"),
      new ErrorCase('{"a":1,"\\u0061":2}', "duplicate key a"),
      new ErrorCase('{"x":{"b":1,"c":2,"b":3}}', "duplicate key x.b"),
      new ErrorCase('{"models":[{"name":"a"},{"name":"b","name":"c"}]}', "duplicate key models[1].name"),
      new ErrorCase('[{"k":1},[{"k":1,"k":2}]]', "duplicate key [1][0].k"),
    ];
    for (let i = 0; i < cases.length; i++) {
      const res = parseJson(cases[i].text);
      expect<bool>(res.value == null).toBe(true, cases[i].text);
      expect<string>(res.error).toBe(cases[i].error, cases[i].text);
    }
    // The same key in different objects is not a duplicate.
    expect<string>(parseJson('{"a":{"k":1},"b":{"k":1},"c":[{"k":1},{"k":2}]}').error).toBe("");
  });

  it("refuses a lone surrogate in the text (it has no UTF-8 form) instead of trapping", () => {
    const text = '{"a":"' + String.fromCharCode(0xd800) + '"}';
    const res = parseJson(text);
    expect<bool>(res.value == null).toBe(true);
    expect<string>(res.error).toBe("invalid JSON at byte 5: an invalid string (bad escape, control character or UTF-8)");
    // Escaped, the same code unit is fine.
    expect<i32>(parsed('"\\ud800"').strValue.charCodeAt(0)).toBe(0xd800);
  });
});
