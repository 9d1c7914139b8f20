// HeaderMapView (assembly/abi/headers.ts): header reads from one serialised copy of a map, as
// get_header_map_pairs returns it. Checked against serializeHeaders' output and against maps whose sizes
// run past their end (a host bug must not make the plugin read out of bounds).
import { HeaderMapView, HeaderPair, serializeHeaders } from "../../assembly/abi/headers";
import { HostBytes } from "../../assembly/abi/memory";

function viewOf(buf: ArrayBuffer, len: i32 = -1): HeaderMapView {
  return new HeaderMapView(new HostBytes(changetype<usize>(buf), len < 0 ? buf.byteLength : len));
}

function map(): ArrayBuffer {
  const pairs = new Array<HeaderPair>();
  pairs.push(new HeaderPair(":method", "POST"));
  pairs.push(new HeaderPair(":path", "/v1/chat/completions?x=1"));
  pairs.push(new HeaderPair("content-length", "1024"));
  pairs.push(new HeaderPair("x-empty", ""));
  pairs.push(new HeaderPair("x-twice", "first"));
  pairs.push(new HeaderPair("x-twice", "second"));
  pairs.push(new HeaderPair("x-utf8", "héllo"));
  return serializeHeaders(pairs);
}

describe("HeaderMapView", () => {
  it("finds each header's value", () => {
    const v = viewOf(map());
    expect(v.get(":method")).toBe("POST");
    expect(v.get(":path")).toBe("/v1/chat/completions?x=1");
    expect(v.get("content-length")).toBe("1024");
    expect(v.get("x-utf8")).toBe("héllo");
  });

  it("tells an empty value from an absent header", () => {
    const v = viewOf(map());
    expect(v.get("x-empty")).toBe("");
    expect(v.has("x-empty")).toBe(true);
    expect(v.get("x-absent")).toBeNull();
    expect(v.has("x-absent")).toBe(false);
    // A prefix or an extension of a name is another name.
    expect(v.has(":pat")).toBe(false);
    expect(v.has("content-length2")).toBe(false);
  });

  it("answers the first of repeated headers, as get_header_map_value does", () => {
    expect(viewOf(map()).get("x-twice")).toBe("first");
  });

  it("compares names without regard to ASCII case", () => {
    const v = viewOf(map());
    expect(v.get("Content-Length")).toBe("1024");
    expect(v.has("X-EMPTY")).toBe(true);
  });

  it("finds nothing in an empty or refused map", () => {
    expect(viewOf(serializeHeaders(new Array<HeaderPair>())).has(":method")).toBe(false);
    expect(new HeaderMapView(new HostBytes(0, 0)).get(":method")).toBeNull();
  });

  it("stops at sizes that run past the end instead of reading beyond it", () => {
    const buf = map();
    // Cut anywhere: every pair that is whole before the cut is still found, nothing past it is.
    const full = buf.byteLength;
    for (let cut = 0; cut < full; cut++) {
      const v = viewOf(buf, cut);
      const m = v.get(":method");
      if (m != null) expect(m).toBe("POST");
      expect(v.has("x-utf8")).toBe(false);
    }
    // A count larger than the map can hold.
    const lying = map();
    store<u32>(changetype<usize>(lying), 1000);
    expect(viewOf(lying).has(":method")).toBe(false);
    // A key length pointing past the end.
    const long = map();
    store<u32>(changetype<usize>(long) + 4, 1 << 30);
    expect(viewOf(long).has(":method")).toBe(false);
  });
});
