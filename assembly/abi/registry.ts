// Which root context serves this module: set once by the entry file, when the module starts.
import { RootFactory } from "./context";

let factory: RootFactory | null = null;

export function setRootFactory(f: RootFactory): void {
  factory = f;
}

export function rootFactory(): RootFactory | null {
  return factory;
}
