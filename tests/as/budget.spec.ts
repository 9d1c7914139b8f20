// The VM's memory budget (assembly/util/budget.ts) and the buffers charged to it (sse/buffer.ts).
import { Account, vmBudget } from "../../assembly/util/budget";
import { BoundedBytes } from "../../assembly/sse/buffer";
import { utf8, hold } from "./helpers";

describe("memory budget", () => {
  test("charges fit or are refused whole; settling gives everything back", () => {
    vmBudget.limit = 10000;
    vmBudget.used = 0;
    const a = new Account();
    const b = new Account();
    expect<bool>(a.take(6000)).toBe(true);
    expect<bool>(b.take(5000)).toBe(false, "would pass the limit");
    expect<i64>(vmBudget.used).toBe(6000, "a refusal charges nothing");
    expect<bool>(b.take(4000)).toBe(true);
    a.giveBack(1000);
    expect<i64>(vmBudget.used).toBe(9000);
    a.settle();
    b.settle();
    expect<i64>(vmBudget.used).toBe(0);
    expect<i64>(a.charged + b.charged).toBe(0);
    expect<bool>(vmBudget.peak >= 10000).toBe(true);
  });

  test("a buffer whose growth the budget refuses refuses the append, keeps what it has, never aborts", () => {
    vmBudget.limit = 4096;
    vmBudget.used = 0;
    const acc = new Account();
    const buf = new BoundedBytes(1 << 20, acc);
    const chunk = utf8("0123456789abcdef0123456789abcdef");
    let appended = 0;
    for (let i = 0; i < 1000; i++) {
      if (!buf.append(hold(chunk), chunk.byteLength)) break;
      appended++;
    }
    expect<bool>(appended > 0 && appended < 1000).toBe(true, "some appends fit, then the budget refused");
    expect<i32>(buf.length).toBe(appended * chunk.byteLength);
    expect<bool>(vmBudget.used <= vmBudget.limit).toBe(true);
    expect<bool>(buf.appendByte(0x41)).toBe(false, "a byte needing more capacity is refused too");
    acc.settle();
    expect<i64>(vmBudget.used).toBe(0);
  });

  test("an unmetered buffer (no account) only knows its ceiling", () => {
    vmBudget.limit = 0;
    const buf = new BoundedBytes(64);
    const chunk = utf8("0123456789abcdef");
    for (let i = 0; i < 4; i++) expect<bool>(buf.append(hold(chunk), 16)).toBe(true);
    expect<bool>(buf.append(hold(chunk), 16)).toBe(false);
  });
});
