// A list of model names and `prefix*` patterns, as the features that apply to some models take it
// (prefixAffinity.models, quotas.rules[].models). Empty matches every model.
export class ModelPatterns {
  private exact: Array<string> = new Array<string>();
  private prefixes: Array<string> = new Array<string>();

  constructor(items: Array<string>) {
    for (let i = 0; i < items.length; i++) {
      const s = unchecked(items[i]);
      if (s.endsWith("*")) this.prefixes.push(s.substring(0, s.length - 1));
      else this.exact.push(s);
    }
  }

  get all(): bool {
    return this.exact.length == 0 && this.prefixes.length == 0;
  }

  matches(model: string): bool {
    if (this.all || this.exact.includes(model)) return true;
    for (let i = 0; i < this.prefixes.length; i++) if (model.startsWith(unchecked(this.prefixes[i]))) return true;
    return false;
  }
}
