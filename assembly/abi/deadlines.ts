// Per-request deadlines: proxy-wasm has no per-request timer, so the root context's tick (set here on
// first use) checks them and calls onDeadline on the contexts whose time has come.
import { HttpContext } from "./context";
import { nowNanos, setEffectiveContext, setTickPeriodMs } from "./host";

export class Deadlines {
  private waiting: Array<HttpContext> = new Array<HttpContext>();
  private at: Array<u64> = new Array<u64>();
  private ticking: bool = false;

  constructor(private tickMs: u32) {}

  watch(ctx: HttpContext, deadlineNs: u64): void {
    this.waiting.push(ctx);
    this.at.push(deadlineNs);
    if (!this.ticking) this.ticking = setTickPeriodMs(this.tickMs);
  }

  unwatch(ctx: HttpContext): void {
    for (let i = 0; i < this.waiting.length; i++) {
      if (unchecked(this.waiting[i]) === ctx) {
        this.remove(i);
        return;
      }
    }
  }

  // Called from the root's onTick.
  expire(): void {
    if (this.waiting.length == 0) return;
    const now = nowNanos();
    for (let i = this.waiting.length - 1; i >= 0; i--) {
      if (unchecked(this.at[i]) > now) continue;
      const ctx = unchecked(this.waiting[i]);
      this.remove(i);
      setEffectiveContext(ctx.id);
      ctx.onDeadline();
    }
  }

  private remove(i: i32): void {
    const last = this.waiting.length - 1;
    unchecked((this.waiting[i] = unchecked(this.waiting[last])));
    unchecked((this.at[i] = unchecked(this.at[last])));
    this.waiting.pop();
    this.at.pop();
  }
}
